//! The endpoints, one module per Asana resource. Every method is on [`Client`]
//! and goes through its single transport.

mod events;
mod projects;
pub mod tasks;
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

    /// One page of a list: `limit=100`, from `offset` when given. Returns the items and
    /// the next page's offset (`None` on the last page).
    async fn page<T: DeserializeOwned>(
        &self,
        segments: &[String],
        query: &Query,
        offset: Option<&str>,
    ) -> Result<(Vec<T>, Option<String>), Error> {
        let mut query = query.clone();
        query.push(("limit", PAGE_SIZE.to_owned()));
        if let Some(o) = offset {
            query.push(("offset", enc(o)));
        }
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let res = self.send(self.get(self.url(&segs, &query))).await?;
        if !res.status.is_success() {
            return Err(Error::from_response(res.status.as_u16(), &res.body));
        }
        let page: Page<T> = decode(&res.body)?;
        let next = page.next_page.and_then(|n| n.offset);
        // A server that hands back the offset it was given would loop forever.
        if next.is_some() && next.as_deref() == offset {
            return Err(Error::Decode {
                path: "next_page.offset".into(),
                message: "Asana returned the same offset again".into(),
            });
        }
        Ok((page.data, next))
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
        self.paged_from(segments, query, None)
    }

    /// [`Client::paged`] starting at the page `offset` names (`None`: the first page).
    fn paged_from<T>(
        &self,
        segments: Vec<String>,
        query: Query,
        offset: Option<String>,
    ) -> impl Stream<Item = Result<T, Error>> + Send + '_
    where
        T: DeserializeOwned + Send + 'static,
    {
        enum Cursor {
            At(Option<String>),
            Done,
        }
        stream::try_unfold(Cursor::At(offset), move |cursor| {
            let query = query.clone();
            let segments = segments.clone();
            async move {
                let offset = match cursor {
                    Cursor::At(o) => o,
                    Cursor::Done => return Ok(None),
                };
                let (items, next) = self.page(&segments, &query, offset.as_deref()).await?;
                let next = match next {
                    Some(o) => Cursor::At(Some(o)),
                    None => Cursor::Done,
                };
                Ok(Some((items, next)))
            }
        })
        .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
    }
}
