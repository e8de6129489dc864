//! The error of a registry call: an HTTP status (toxiproxy's) and a message naming the field.

/// A proxy, toxic or database fault request that cannot be accepted, with the HTTP status
/// toxiproxy gives (the admin API answers with it; in-process callers match on it, e.g.
/// 404 for "already gone").
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status (400, 404, 409, 500).
    pub status: u16,
    /// What is wrong, naming the field.
    pub message: String,
}

impl ApiError {
    /// A 400 naming what is wrong.
    ///
    /// ```
    /// let e = fault_proxy::ApiError::bad_request("name: missing required field");
    /// assert_eq!((e.status, e.to_string().as_str()), (400, "name: missing required field"));
    /// ```
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
    /// A 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
    /// A 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            message: message.into(),
        }
    }

    /// The same error with `prefix` before its message (`proxies[2].` + `upstream: ...`).
    pub fn prefixed(self, prefix: &str) -> ApiError {
        ApiError {
            status: self.status,
            message: format!("{prefix}{}", self.message),
        }
    }
}

impl From<crate::toxics::ToxicError> for ApiError {
    fn from(e: crate::toxics::ToxicError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}
