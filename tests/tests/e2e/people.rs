//! Enrolled users and devices for the identity tests, made through the real
//! API with the real client.

use curbside_cli::{Client, Trust};
use curbside_proto::identity::{EnrollRequest, LoggedIn, NewUser, Role, User};
use curbside_tests::TestServer;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// A device with its key, enrolled on a server, and a client for it.
pub struct Person {
    pub key: Ed25519KeyPair,
    /// The key as PKCS#8, for the device's MLS state.
    pub pkcs8: Vec<u8>,
    pub user: User,
    pub device_id: String,
    pub server_id: String,
    pub client: Client,
    pub token: Option<String>,
}

/// A fresh Ed25519 key pair.
pub fn new_key() -> Ed25519KeyPair {
    new_key_pkcs8().0
}

/// A fresh Ed25519 key pair and its PKCS#8 encoding.
pub fn new_key_pkcs8() -> (Ed25519KeyPair, Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    (
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        pkcs8.as_ref().to_vec(),
    )
}

/// Enrolls a new device with `code`.
pub async fn enroll(server: &TestServer, code: &str, display_name: Option<&str>) -> Person {
    enroll_with(server.client(), code, display_name).await
}

/// Enrolls a new device with `code` through `client`.
pub async fn enroll_with(client: Client, code: &str, display_name: Option<&str>) -> Person {
    let (key, pkcs8) = new_key_pkcs8();
    let enrolled = client
        .enroll(&EnrollRequest {
            code: code.to_owned(),
            device_name: "test device".to_owned(),
            public_key: key.public_key().as_ref().to_vec(),
            display_name: display_name.map(str::to_owned),
        })
        .await
        .unwrap();
    Person {
        key,
        pkcs8,
        user: enrolled.user,
        device_id: enrolled.device.device_id,
        server_id: enrolled.server_id,
        client,
        token: None,
    }
}

impl Person {
    /// A receipt for entries 1 to `through` of `thread_id`, signed now by
    /// this person's device key.
    pub fn signed_receipt(
        &self,
        thread_id: &str,
        kind: curbside_proto::threads::ReceiptKind,
        through: u64,
    ) -> curbside_proto::threads::Receipt {
        let time_ms = curbside_cli::clock::now_ms();
        let message = curbside_proto::threads::receipt_message(
            &self.server_id,
            &self.device_id,
            thread_id,
            kind,
            through,
            time_ms,
        );
        curbside_proto::threads::Receipt {
            seq: through,
            time_ms,
            signature: self.key.sign(&message).as_ref().to_vec(),
        }
    }

    /// Sends a signed delivered (`read` false) or read receipt.
    pub async fn receipt(
        &self,
        thread_id: &str,
        through: u64,
        read: bool,
    ) -> Result<(), curbside_cli::client::ClientError> {
        let kind = if read {
            curbside_proto::threads::ReceiptKind::Read
        } else {
            curbside_proto::threads::ReceiptKind::Delivered
        };
        self.client
            .receipt(
                thread_id,
                kind,
                &self.signed_receipt(thread_id, kind, through),
            )
            .await
    }

    /// Logs in (challenge-response) and keeps the token.
    pub async fn login(&mut self) -> LoggedIn {
        let logged_in = self
            .client
            .login_with_key(&self.server_id, &self.device_id, &self.key)
            .await
            .unwrap();
        self.token = Some(logged_in.token.clone());
        logged_in
    }

    /// The current token.
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("logged in")
    }

    /// A client on the same server with no session.
    pub fn anonymous(&self, server: &TestServer) -> Client {
        Client::new(&server.url, &Trust::Pin(server.fingerprint)).unwrap()
    }
}

/// The first administrator, enrolled with the code the server printed, and
/// logged in.
pub async fn first_admin(server: &TestServer) -> Person {
    let code = server.first_admin_code.clone().expect("a first-admin code");
    let mut admin = enroll(server, &code, Some("Dr. First Admin")).await;
    admin.login().await;
    admin
}

/// A new user with this role, enrolled and logged in, made by `admin`.
pub async fn person(server: &TestServer, admin: &Person, name: &str, role: Role) -> Person {
    person_on(server.client(), admin, name, role).await
}

/// A new user made by `admin`, enrolled through `client` (any server on
/// the same database) and logged in.
pub async fn person_on(client: Client, admin: &Person, name: &str, role: Role) -> Person {
    let user = admin
        .client
        .create_user(&NewUser {
            display_name: name.to_owned(),
            role,
            department: "Cardiology".to_owned(),
            licence_number: None,
            user_name: None,
            external_id: None,
        })
        .await
        .unwrap();
    let code = admin
        .client
        .issue_enrollment_code(&user.user_id)
        .await
        .unwrap();
    let mut person = enroll_with(client, &code.code, None).await;
    person.login().await;
    person
}
