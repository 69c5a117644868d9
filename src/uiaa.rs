//! User-Interactive Authentication (spec: "User-Interactive Authentication API").
//!
//! An endpoint states its flows; [`Uiaa::check`] either lets the request through (a flow is
//! complete) or answers 401 with the flows, the session and what is completed so far.
//! Sessions live in memory for `SESSION_LIFETIME`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ruma::api::client::uiaa::{AuthData, UserIdentifier};
use ruma::{OwnedUserId, UserId};
use serde_json::json;

use crate::error::{Error, Result};
use crate::services::Services;
use crate::users::{accounts, password, random_string};

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct Uiaa {
    sessions: Mutex<HashMap<String, Session>>,
}

struct Session {
    /// The user the session authenticates (None during registration).
    user_id: Option<OwnedUserId>,
    completed: Vec<String>,
    created: Instant,
}

impl Uiaa {
    /// Let the request through once `auth` completes one of `flows`, else 401 with the UIA body.
    /// `user_id` is the authenticated requester (for the password stage), if any.
    pub async fn check(
        &self,
        s: &Services,
        auth: Option<&AuthData>,
        flows: &[&[&str]],
        user_id: Option<&UserId>,
    ) -> Result<()> {
        let Some(auth) = auth else {
            let session = self.new_session(user_id);
            return Err(challenge(flows, &session, &[], None));
        };
        let session_id = match auth.session() {
            Some(id) if self.lookup(id, user_id)?.is_some() => id.to_owned(),
            _ => self.new_session(user_id),
        };
        let completed = self.lookup(&session_id, user_id)?.unwrap_or_default();
        let stage = match self.run_stage(s, auth, flows, user_id).await? {
            Ok(stage) => stage,
            Err(e) => return Err(challenge(flows, &session_id, &completed, Some(e))),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(session) = sessions.get_mut(&session_id) else {
            return Err(challenge(flows, &session_id, &[], None));
        };
        if !session.completed.iter().any(|c| c == stage) {
            session.completed.push(stage.to_owned());
        }
        let done = flows.iter().any(|flow| flow.iter().all(|st| session.completed.iter().any(|c| c == st)));
        if done {
            sessions.remove(&session_id);
            return Ok(());
        }
        let completed = session.completed.clone();
        Err(challenge(flows, &session_id, &completed, None))
    }

    fn new_session(&self, user_id: Option<&UserId>) -> String {
        let id = random_string(24);
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
        let session =
            Session { user_id: user_id.map(ToOwned::to_owned), completed: Vec::new(), created: Instant::now() };
        sessions.insert(id.clone(), session);
        id
    }

    /// The completed stages of a live session; `M_FORBIDDEN` if it belongs to another user.
    fn lookup(&self, id: &str, user_id: Option<&UserId>) -> Result<Option<Vec<String>>> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match sessions.get(id) {
            Some(s) if s.created.elapsed() >= SESSION_LIFETIME => Ok(None),
            Some(s) if s.user_id.as_deref() != user_id => Err(Error::forbidden("This session belongs to another user")),
            Some(s) => Ok(Some(s.completed.clone())),
            None => Ok(None),
        }
    }

    /// Validate one stage: `Ok(Ok(type))` when it passed, `Ok(Err(why))` when the client may
    /// retry it (answered inside the 401), `Err` when the request must fail outright.
    async fn run_stage(
        &self,
        s: &Services,
        auth: &AuthData,
        flows: &[&[&str]],
        user_id: Option<&UserId>,
    ) -> Result<Result<&'static str>> {
        let offered = |stage: &str| flows.iter().any(|f| f.contains(&stage));
        Ok(match auth {
            AuthData::Dummy(_) if offered(DUMMY) => Ok(DUMMY),
            AuthData::RegistrationToken(t) if offered(REGISTRATION_TOKEN) => {
                if s.config.registration.token.as_deref() == Some(t.token.as_str()) {
                    Ok(REGISTRATION_TOKEN)
                } else {
                    Err(Error::forbidden("Invalid registration token"))
                }
            }
            AuthData::Password(p) if offered(PASSWORD) => {
                let Some(user_id) = user_id else { return Ok(Err(Error::forbidden("No user to authenticate"))) };
                let named = match &p.identifier {
                    UserIdentifier::Matrix(m) => s.resolve_user(&m.user).ok(),
                    _ => None,
                };
                // Someone else's credentials can never authorise this request: 403, not a
                // stage to retry (as Synapse: "Invalid auth"). Checked before any password.
                if named.as_deref().is_some_and(|named| named != user_id) {
                    return Err(Error::forbidden("The password stage names another user than the requester"));
                }
                if named.is_none() {
                    return Ok(Err(Error::forbidden("Password stage must identify the requesting user")));
                }
                let record = accounts::get_active(&s.db, user_id)?;
                let ok = match record.password_hash {
                    Some(hash) => password::verify(p.password.clone(), hash).await,
                    None => false,
                };
                if ok { Ok(PASSWORD) } else { Err(Error::forbidden("Invalid password")) }
            }
            _ => Err(Error::new(
                crate::error::ErrorKind::Unrecognized { method_not_allowed: false },
                "Unsupported authentication stage",
            )),
        })
    }
}

fn challenge(flows: &[&[&str]], session: &str, completed: &[String], error: Option<Error>) -> Error {
    let mut body = json!({
        "flows": flows.iter().map(|f| json!({ "stages": f })).collect::<Vec<_>>(),
        "params": {},
        "session": session,
    });
    if !completed.is_empty() {
        body["completed"] = json!(completed);
    }
    if let Some(e) = error {
        let (_, err) = e.to_parts(false);
        body["errcode"] = err["errcode"].clone();
        body["error"] = err["error"].clone();
    }
    Error::Uiaa(body)
}
