//! Client-Server API handlers for `src/sync`.

use axum::Router;

use crate::services::State;

pub fn routes(r: Router<State>) -> Router<State> {
    r
}
