//! The one error type of Trellis: every failure maps to a Matrix `errcode` and an HTTP status.
//!
//! Spec: Client-Server API, "Standard error response".

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Matrix error code (`M_*`), with the HTTP status it is returned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Forbidden,
    UnknownToken {
        soft_logout: bool,
    },
    MissingToken,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded {
        retry_after_ms: u64,
    },
    Unrecognized {
        method_not_allowed: bool,
    },
    Unknown,
    UserInUse,
    InvalidUsername,
    Exclusive,
    InvalidParam,
    MissingParam,
    WeakPassword,
    UserDeactivated,
    GuestAccessForbidden,
    TooLarge,
    ProfileTooLarge,
    KeyTooLarge,
    Unauthorized,
    UnsupportedRoomVersion,
    RoomInUse,
    InvalidRoomState,
    BadAlias,
    IncompatibleRoomVersion,
    UnableToAuthoriseJoin,
    UnableToGrantJoin,
    /// 401 with `soft_logout: true`: the account is locked (spec: "Account locking").
    UserLocked,
    /// 403: the account is suspended and may not do this (spec: "Account suspension").
    UserSuspended,
    ThreepidMediumNotSupported,
}

impl ErrorKind {
    pub fn errcode(self) -> &'static str {
        use ErrorKind::*;
        match self {
            Forbidden => "M_FORBIDDEN",
            UnknownToken { .. } => "M_UNKNOWN_TOKEN",
            MissingToken => "M_MISSING_TOKEN",
            BadJson => "M_BAD_JSON",
            NotJson => "M_NOT_JSON",
            NotFound => "M_NOT_FOUND",
            LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            Unrecognized { .. } => "M_UNRECOGNIZED",
            Unknown => "M_UNKNOWN",
            UserInUse => "M_USER_IN_USE",
            InvalidUsername => "M_INVALID_USERNAME",
            Exclusive => "M_EXCLUSIVE",
            InvalidParam => "M_INVALID_PARAM",
            MissingParam => "M_MISSING_PARAM",
            WeakPassword => "M_WEAK_PASSWORD",
            UserDeactivated => "M_USER_DEACTIVATED",
            GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            TooLarge => "M_TOO_LARGE",
            ProfileTooLarge => "M_PROFILE_TOO_LARGE",
            KeyTooLarge => "M_KEY_TOO_LARGE",
            Unauthorized => "M_UNAUTHORIZED",
            UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            RoomInUse => "M_ROOM_IN_USE",
            InvalidRoomState => "M_INVALID_ROOM_STATE",
            BadAlias => "M_BAD_ALIAS",
            IncompatibleRoomVersion => "M_INCOMPATIBLE_ROOM_VERSION",
            UnableToAuthoriseJoin => "M_UNABLE_TO_AUTHORISE_JOIN",
            UnableToGrantJoin => "M_UNABLE_TO_GRANT_JOIN",
            UserLocked => "M_USER_LOCKED",
            UserSuspended => "M_USER_SUSPENDED",
            ThreepidMediumNotSupported => "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        }
    }

    /// The kind behind an `errcode` without extra fields, if it is one of ours.
    pub fn from_errcode(errcode: &str) -> Option<ErrorKind> {
        use ErrorKind::*;
        [
            Forbidden,
            MissingToken,
            BadJson,
            NotJson,
            NotFound,
            Unknown,
            UserInUse,
            InvalidUsername,
            Exclusive,
            InvalidParam,
            MissingParam,
            WeakPassword,
            UserDeactivated,
            GuestAccessForbidden,
            TooLarge,
            Unauthorized,
            UnsupportedRoomVersion,
            RoomInUse,
            InvalidRoomState,
            BadAlias,
            IncompatibleRoomVersion,
            UnableToAuthoriseJoin,
            UnableToGrantJoin,
            UserSuspended,
            ThreepidMediumNotSupported,
        ]
        .into_iter()
        .find(|k| k.errcode() == errcode)
    }

    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            Forbidden | UserDeactivated | GuestAccessForbidden | UserSuspended => StatusCode::FORBIDDEN,
            UnknownToken { .. } | MissingToken | Unauthorized | UserLocked => StatusCode::UNAUTHORIZED,
            NotFound => StatusCode::NOT_FOUND,
            LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unrecognized { method_not_allowed: true } => StatusCode::METHOD_NOT_ALLOWED,
            Unrecognized { method_not_allowed: false } => StatusCode::NOT_FOUND,
            Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error on its way to the client (or to the log, for internal failures).
#[derive(Debug)]
pub enum Error {
    /// A Matrix error the client caused or must know about.
    Matrix { kind: ErrorKind, message: String, status: Option<StatusCode> },
    /// User-Interactive Authentication must continue: 401 with the UIA body
    /// (spec: "User-Interactive Authentication API").
    Uiaa(Value),
    /// A Matrix error whose body carries more fields (`room_version` of
    /// `M_INCOMPATIBLE_ROOM_VERSION`).
    Detailed { kind: ErrorKind, message: String, fields: serde_json::Map<String, Value> },
    /// Another server's error answer to one of our federation requests, kept whole so that a
    /// membership change can relay it ([`Error::relayed`]); unrelayed, a 403 or 404 keeps its
    /// meaning and anything else is a 502.
    Remote(Box<RemoteError>),
    /// A failure on our side; details are logged and shown to the client only in dev mode.
    Internal(String),
}

/// An error status and Matrix error body another server answered with.
#[derive(Debug)]
pub struct RemoteError {
    pub destination: String,
    pub status: StatusCode,
    /// The response body when it is a JSON object (`errcode`, `error`, more fields).
    pub body: serde_json::Map<String, Value>,
    /// Whether it goes to the client as the remote server gave it.
    pub relayed: bool,
}

impl RemoteError {
    pub fn errcode(&self) -> &str {
        self.body.get("errcode").and_then(Value::as_str).unwrap_or("M_UNKNOWN")
    }
    pub fn message(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or_default()
    }
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Matrix { kind, message: message.into(), status: None }
    }

    /// The same error code with a status other than the default for it.
    pub fn with_status(self, status: StatusCode) -> Self {
        match self {
            Error::Matrix { kind, message, .. } => Error::Matrix { kind, message, status: Some(status) },
            other => other,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadJson, message)
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParam, message)
    }
    /// `M_INCOMPATIBLE_ROOM_VERSION` (spec: Server-Server API, "Joining Rooms"): the room's
    /// version is not one the remote server supports.
    pub fn incompatible_room_version(version: &ruma::RoomVersionId) -> Self {
        let fields = serde_json::Map::from_iter([("room_version".to_owned(), json!(version))]);
        let message =
            format!("Your homeserver does not support the features required to join this room (version {version})");
        Error::Detailed { kind: ErrorKind::IncompatibleRoomVersion, message, fields }
    }
    /// A remote server's error as it came (status, `errcode`, `error` and other fields), when it
    /// is a 4xx Matrix error; else unchanged.
    pub fn relayed(self) -> Self {
        match self {
            Error::Remote(mut r) if r.status.is_client_error() && r.body.contains_key("errcode") => {
                r.relayed = true;
                Error::Remote(r)
            }
            other => other,
        }
    }

    /// The remote server's error behind this one, if any.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(r) => Some(r),
            _ => None,
        }
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Matrix { kind, .. } | Error::Detailed { kind, .. } => *kind,
            Error::Uiaa(_) => ErrorKind::Unauthorized,
            Error::Remote(r) if r.relayed => ErrorKind::from_errcode(r.errcode()).unwrap_or(ErrorKind::Unknown),
            Error::Remote(r) => match r.status {
                StatusCode::FORBIDDEN => ErrorKind::Forbidden,
                StatusCode::NOT_FOUND => ErrorKind::NotFound,
                _ => ErrorKind::Unknown,
            },
            Error::Internal(_) => ErrorKind::Unknown,
        }
    }

    /// The JSON body and status of this error. `dev_mode` reveals internal details.
    pub fn to_parts(&self, dev_mode: bool) -> (StatusCode, Value) {
        match self {
            Error::Matrix { kind, message, status } => {
                let mut body = json!({ "errcode": kind.errcode(), "error": message });
                match kind {
                    ErrorKind::UnknownToken { soft_logout: true } | ErrorKind::UserLocked => {
                        body["soft_logout"] = json!(true);
                    }
                    ErrorKind::LimitExceeded { retry_after_ms } => {
                        body["retry_after_ms"] = json!(retry_after_ms);
                    }
                    _ => {}
                }
                (status.unwrap_or_else(|| kind.status()), body)
            }
            Error::Detailed { kind, message, fields } => {
                let mut body = fields.clone();
                body.insert("errcode".into(), json!(kind.errcode()));
                body.insert("error".into(), json!(message));
                (kind.status(), Value::Object(body))
            }
            Error::Uiaa(body) => (StatusCode::UNAUTHORIZED, body.clone()),
            Error::Remote(r) if r.relayed => {
                let mut body = r.body.clone();
                body.insert("error".into(), json!(r.message()));
                (r.status, Value::Object(body))
            }
            Error::Remote(r) => {
                let status = match r.status {
                    StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => r.status,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let errcode = self.kind().errcode();
                (status, json!({ "errcode": errcode, "error": self.to_string() }))
            }
            Error::Internal(detail) => {
                let message = if dev_mode { detail.as_str() } else { "Internal server error" };
                (StatusCode::INTERNAL_SERVER_ERROR, json!({ "errcode": "M_UNKNOWN", "error": message }))
            }
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Matrix { kind, message, .. } | Error::Detailed { kind, message, .. } => {
                write!(f, "{}: {message}", kind.errcode())
            }
            Error::Uiaa(_) => write!(f, "user-interactive authentication required"),
            Error::Remote(r) => {
                write!(f, "{} answered {}: {} {}", r.destination, r.status, r.errcode(), r.message())
            }
            Error::Internal(detail) => write!(f, "internal error: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Internal(format!("database: {e}"))
    }
}

/// The detail of an internal error, kept on its response (the body says only "Internal server
/// error") for [`reveal_internal_details`] to show when `server.dev_mode` is on.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let (status, body) = self.to_parts(false);
        let mut response = (status, axum::Json(body)).into_response();
        if let Error::Internal(detail) = &self {
            response.extensions_mut().insert(InternalDetail(detail.clone()));
        }
        if let Error::Matrix { kind: ErrorKind::LimitExceeded { retry_after_ms }, .. } = self {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Middleware for `server.dev_mode`: an internal error's response carries its detail
/// ([`InternalDetail`]) in the body, as [`Error::to_parts`] renders it with `dev_mode` set.
pub async fn reveal_internal_details(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(req).await;
    let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() else {
        return response;
    };
    let (status, body) = Error::Internal(detail).to_parts(true);
    let mut revealed = (status, axum::Json(body)).into_response();
    *revealed.extensions_mut() = std::mem::take(response.extensions_mut());
    revealed
}

/// Attach context to internal failures: `.ctx("reading user")?`.
pub trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| Error::Internal(format!("{what}: {e}")))
    }
}
