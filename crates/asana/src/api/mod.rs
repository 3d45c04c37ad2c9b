//! The endpoints, one module per Asana resource. Every method is on [`Client`]
//! and goes through its single transport.

mod events;
mod projects;
mod tasks;
mod users;
mod webhooks;

use futures::{stream, Stream, TryStreamExt};
use reqwest::Method;
use serde::{de::DeserializeOwned, Deserialize};
use url::Url;

use crate::{
    client::{decode, enc, enc_list, Request},
    Client, Error,
};

/// Page size for every list call (Asana's maximum; without `limit` some endpoints truncate).
pub(crate) const PAGE_SIZE: &str = "100";

/// `{"data":[…], "next_page": {"offset": …} | null}`.
#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(default)]
    next_page: Option<NextPage>,
}

#[derive(Deserialize)]
struct NextPage {
    offset: Option<String>,
}

/// Query pairs, values already encoded.
type Query = Vec<(&'static str, String)>;

/// Add `opt_fields` when any are given.
fn with_fields(mut query: Query, opt_fields: &[&str]) -> Query {
    let fields = enc_list(opt_fields);
    if !fields.is_empty() {
        query.push(("opt_fields", fields));
    }
    query
}

/// A user identifier for paths and bodies: a gid, an email or `me`.
fn user_ident(user: &str) -> Result<&str, Error> {
    let u = user.trim();
    if u.is_empty() {
        return Err(Error::InvalidInput(
            "the Asana user is empty (give a gid, an email or \"me\")".into(),
        ));
    }
    if u.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        let shown: String = u.chars().take(64).collect();
        return Err(Error::InvalidInput(format!(
            "invalid Asana user {shown:?}: expected a gid, an email or \"me\""
        )));
    }
    Ok(u)
}

impl Client {
    fn get(&self, url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            body: None,
        }
    }

    /// A lazy stream over every item of a paged list: `limit=100`, then each
    /// `next_page.offset` passed back verbatim until `next_page` is null.
    fn paged<T>(
        &self,
        segments: Vec<String>,
        query: Query,
    ) -> impl Stream<Item = Result<T, Error>> + Send + '_
    where
        T: DeserializeOwned + Send + 'static,
    {
        enum Cursor {
            First,
            Next(String),
            Done,
        }
        stream::try_unfold(Cursor::First, move |cursor| {
            let mut query = query.clone();
            let segments = segments.clone();
            async move {
                let offset = match cursor {
                    Cursor::First => None,
                    Cursor::Next(o) => Some(o),
                    Cursor::Done => return Ok(None),
                };
                query.push(("limit", PAGE_SIZE.to_owned()));
                if let Some(o) = &offset {
                    query.push(("offset", enc(o)));
                }
                let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
                let res = self.send(self.get(self.url(&segs, &query))).await?;
                if !res.status.is_success() {
                    return Err(Error::from_response(res.status.as_u16(), &res.body));
                }
                let page: Page<T> = decode(&res.body)?;
                let next = match page.next_page.and_then(|n| n.offset) {
                    // A server that hands back the offset it was given would loop forever.
                    Some(o) if Some(&o) == offset.as_ref() => {
                        return Err(Error::Decode {
                            path: "next_page.offset".into(),
                            message: "Asana returned the same offset again".into(),
                        })
                    }
                    Some(o) => Cursor::Next(o),
                    None => Cursor::Done,
                };
                Ok(Some((page.data, next)))
            }
        })
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
    }
}
