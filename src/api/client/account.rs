//! `POST /account/password`, `POST /account/deactivate`, `GET /account/3pid`
//! (spec: "Account registration and management").

use ruma::api::client::account::{change_password, deactivate, get_3pids};
use ruma::thirdparty::ThirdPartyIdentifierInit;
use ruma::{MilliSecondsSinceUnixEpoch, UInt};

use super::login::uia_reauth;
use crate::api::ruma::Ruma;
use crate::error::{Error, Result};
use crate::services::State;
use crate::users::{accounts, devices, password};

/// `POST /_matrix/client/v3/account/password`
pub async fn change_password(s: State, r: Ruma<change_password::v3::Request>) -> Result<change_password::v3::Response> {
    let auth = r.auth()?.clone();
    password::check_policy(&r.body.new_password, &s.config.password_policy)?;
    uia_reauth(&s, r.body.auth.as_ref(), &auth.user_id).await?;
    let hash = password::hash(r.body.new_password).await?;
    let logout_devices = r.body.logout_devices;
    accounts::set_password(&s.db, &auth.user_id, hash)?;
    if logout_devices {
        devices::delete_all(&s.db, &auth.user_id, Some(&auth.device_id))?;
    }
    Ok(change_password::v3::Response::new())
}

/// `POST /_matrix/client/v3/account/deactivate`
pub async fn deactivate(s: State, r: Ruma<deactivate::v3::Request>) -> Result<deactivate::v3::Response> {
    let auth = r.auth()?.clone();
    uia_reauth(&s, r.body.auth.as_ref(), &auth.user_id).await?;
    let erase = r.body.erase;
    accounts::deactivate(&s.db, &auth.user_id, erase)?;
    tracing::info!(user_id = %auth.user_id, erase, "deactivated");
    Ok(deactivate::v3::Response::new(ruma::api::client::account::ThirdPartyIdRemovalStatus::NoSupport))
}

/// `GET /_matrix/client/v3/account/3pid`
pub async fn threepids(s: State, r: Ruma<get_3pids::v3::Request>) -> Result<get_3pids::v3::Response> {
    let uid = r.auth()?.user_id.clone();
    let list = accounts::threepids(&s.db, &uid)?;
    let ts = |ms: u64| MilliSecondsSinceUnixEpoch(UInt::try_from(ms).unwrap_or_default());
    let threepids = list
        .into_iter()
        .map(|(medium, address, added)| {
            ThirdPartyIdentifierInit {
                address,
                medium: medium.as_str().into(),
                validated_at: ts(added),
                added_at: ts(added),
            }
            .into()
        })
        .collect();
    Ok(get_3pids::v3::Response::new(threepids))
}

/// Only the account holder may touch their account-scoped resources.
pub fn ensure_self(r_user: &ruma::UserId, path_user: &ruma::UserId, what: &str) -> Result<()> {
    if r_user != path_user {
        return Err(Error::forbidden(format!("Cannot access {what} of other users")));
    }
    Ok(())
}
