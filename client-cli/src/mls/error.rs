//! Why an MLS step failed.

/// Why an MLS step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MlsError {
    /// OpenMLS refused (the message names the step; OpenMLS's own account
    /// is kept for debugging, never shown).
    #[error(
        "the encryption step failed ({step}); run the command again, and if it fails again, \
         tell your administrator"
    )]
    Protocol {
        /// What was being done.
        step: &'static str,
        /// OpenMLS's account of it.
        detail: String,
    },
    /// A welcome to a thread this device is in, at an epoch it has passed.
    #[error("a welcome to thread {0} is older than what this device holds; it was ignored")]
    StaleWelcome(String),
    /// A message or package from elsewhere is not well-formed MLS.
    #[error("a {what} from the server is not a well-formed MLS message")]
    Malformed {
        /// What it should have been.
        what: &'static str,
    },
    /// This device is not in the thread's group.
    #[error("this device has no keys for thread {0}; it may not have joined it yet")]
    NotJoined(String),
    /// A commit does not do what its sender declared to the server.
    #[error(
        "a commit in thread {thread} does not match the membership change declared with it; \
         stop using this thread and tell your administrator"
    )]
    DeclarationMismatch {
        /// The thread.
        thread: String,
    },
    /// A credential names something other than a device identity.
    #[error("a member credential is not a Curbside device identity")]
    BadCredential,
    /// An entry's MLS sender is not the device the server says sent it.
    #[error(
        "a message in thread {thread} was not sent by the device the server names; stop using \
         this thread and tell your administrator"
    )]
    SenderMismatch {
        /// The thread.
        thread: String,
    },
    /// A commit does something Curbside clients never do (an external
    /// join, a change of group settings, a member changing identity).
    #[error(
        "a commit in thread {thread} does something Curbside does not allow ({what}); stop \
         using this thread and tell your administrator"
    )]
    ForbiddenCommit {
        /// The thread.
        thread: String,
        /// What it tried.
        what: &'static str,
    },
}

pub(super) fn protocol(step: &'static str) -> impl Fn(&dyn std::fmt::Debug) -> MlsError {
    move |error| MlsError::Protocol {
        step,
        detail: format!("{error:?}"),
    }
}
