//! Room information and per-user room data: tags, read markers, reports, timestamp lookup,
//! room summary, user directory. Registered from ruma's metadata like every endpoint.

use axum::Router;

use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    r
}
