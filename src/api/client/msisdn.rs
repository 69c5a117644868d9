//! `POST /account/3pid/msisdn/requestToken`, `/register/msisdn/requestToken` and
//! `/account/password/msisdn/requestToken` (spec: "Adding Account Administrative Contact
//! Information"): Trellis does not verify phone numbers (no SMS gateway), so each answers 400
//! `M_THREEPID_MEDIUM_NOT_SUPPORTED`, as Synapse does without an SMS-capable identity server.

use ruma::api::client::account::{
    request_3pid_management_token_via_msisdn as add, request_password_change_token_via_msisdn as password,
    request_registration_token_via_msisdn as register,
};

use crate::api::ruma::Ruma;
use crate::error::{Error, ErrorKind, Result};
use crate::services::State;

fn unsupported<T>() -> Result<T> {
    Err(Error::new(ErrorKind::ThreepidMediumNotSupported, "This server does not verify phone numbers"))
}

/// `POST /_matrix/client/v3/account/3pid/msisdn/requestToken`
pub async fn add_token(_s: State, _r: Ruma<add::v3::Request>) -> Result<add::v3::Response> {
    unsupported()
}

/// `POST /_matrix/client/v3/register/msisdn/requestToken`
pub async fn register_token(_s: State, _r: Ruma<register::v3::Request>) -> Result<register::v3::Response> {
    unsupported()
}

/// `POST /_matrix/client/v3/account/password/msisdn/requestToken`
pub async fn password_token(_s: State, _r: Ruma<password::v3::Request>) -> Result<password::v3::Response> {
    unsupported()
}
