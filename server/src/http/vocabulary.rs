//! The audit vocabulary: what each route does, for its audit entry, as
//! its declaration in the API document says (see `super::openapi`, which
//! builds the [`Vocabulary`] once per process).

use std::collections::HashMap;

use axum::http::Method;

/// What a route does, for its audit entry: the action, the kind of
/// resource, and which path parameter (if any) names the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// E.g. `admin.user.deactivate`: the route's operation id.
    pub action: &'static str,
    /// E.g. `user`: the route's tag.
    pub resource_type: &'static str,
    /// The path parameter holding the resource's id: the route's last.
    pub id_param: Option<&'static str>,
}

/// What an undeclared route is recorded as (none is: a test checks).
pub const UNDECLARED: Kind = Kind {
    action: "http.request",
    resource_type: "route",
    id_param: None,
};

/// Every declared route's [`Kind`], by method and path pattern.
#[derive(Debug, Default)]
pub struct Vocabulary {
    kinds: HashMap<(Method, &'static str), Kind>,
}

impl Vocabulary {
    /// A vocabulary of these routes.
    pub fn new(kinds: HashMap<(Method, &'static str), Kind>) -> Self {
        Self { kinds }
    }

    /// What `method` on the route `pattern` does. A `HEAD` is the `GET`
    /// it mirrors (axum answers it with the GET handler); an undeclared
    /// route is [`UNDECLARED`].
    pub fn classify(&self, method: &Method, pattern: &str) -> Kind {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.kinds
            .get(&(method.clone(), pattern))
            .copied()
            .unwrap_or(UNDECLARED)
    }

    /// Every declared route: method, path pattern and kind.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &'static str, Kind)> {
        self.kinds
            .iter()
            .map(|((method, pattern), kind)| (method, *pattern, *kind))
    }
}
