//! `POST /user_directory/search` (spec: "User directory").

use ruma::api::client::user_directory::search_users;

use crate::api::ruma::Ruma;
use crate::error::Result;
use crate::rooms::info::directory;
use crate::services::State;

/// `POST /_matrix/client/v3/user_directory/search`
pub async fn search(s: State, r: Ruma<search_users::v3::Request>) -> Result<search_users::v3::Response> {
    let user = r.auth()?.user_id.clone();
    let limit = usize::try_from(u64::from(r.body.limit)).unwrap_or(usize::MAX);
    let term = r.body.search_term;
    let (found, limited) = directory::search(&s, &user, &term, limit)?;
    let results = found
        .into_iter()
        .map(|f| {
            let mut user = search_users::v3::User::new(f.user_id);
            user.display_name = f.display_name;
            user.avatar_url = f.avatar_url.map(Into::into);
            user
        })
        .collect();
    Ok(search_users::v3::Response::new(results, limited))
}
