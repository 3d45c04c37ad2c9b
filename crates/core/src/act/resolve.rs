//! Who of these emails is on the portal (active, pending or disabled), in the fewest
//! calls.
//!
//! One lookup costs one call per email; a listing costs one call per 100 people on the
//! portal (all statuses, so pending and disabled people are found too). The first listing
//! page tells the portal's size; whichever way is cheaper for the emails still unknown
//! finishes the job. During a project reconcile the listing rides along the Asana page
//! chain ([`prefetch`]) instead of adding to it.

use std::collections::{BTreeSet, HashMap, HashSet};

use docspace_api::{PeopleFilter, Person};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;

/// DocSpace's page size for people listings (`count` is capped at 100).
pub const PEOPLE_PAGE: u64 = 100;

/// Concurrent lookups or listing pages of one resolve.
const READ_CONCURRENCY: usize = 8;

/// What [`prefetch`] read: the first page with the portal's size, and the other pages
/// when it was sure they would be needed.
#[derive(Debug)]
pub struct Prefetched {
    first: Vec<Person>,
    total: u64,
    rest: Option<Vec<Person>>,
}

/// The distinct valid emails an intake has met so far, and whether it has finished:
/// what [`prefetch`] needs to know to read the whole listing early.
#[derive(Debug)]
pub struct Seen(watch::Sender<(HashSet<String>, bool)>);

impl Default for Seen {
    fn default() -> Self {
        Seen(watch::Sender::new((HashSet::new(), false)))
    }
}

impl Seen {
    /// The intake met `email`.
    pub fn add(&self, email: &str) {
        self.0.send_if_modified(|(emails, _)| {
            if emails.contains(email) {
                false
            } else {
                emails.insert(email.to_string())
            }
        });
    }

    /// The intake has finished.
    pub fn finish(&self) {
        self.0.send_modify(|(_, done)| *done = true);
    }
}

/// Reads the portal's people while the intake runs: the first page at once; the others
/// once the intake has met more distinct emails than there are remaining pages plus one
/// page's worth (at most that many can be on the first page). Past that point
/// [`resolve`] is sure to choose the listing, so reading early costs no call it would
/// not make anyway. Errors are left for [`resolve`] to meet again.
pub async fn prefetch(ds: docspace_api::Client, seen: &Seen) -> Option<Prefetched> {
    let all = PeopleFilter::default();
    let (first, total) = ds.people_page(&all, 0, PEOPLE_PAGE).await.ok()?;
    let pages = total.div_ceil(PEOPLE_PAGE);
    let remaining = pages.saturating_sub(1);
    let mut out = Prefetched {
        first,
        total,
        rest: None,
    };
    if remaining == 0 {
        return Some(out);
    }
    let need = (remaining + PEOPLE_PAGE) as usize;
    let mut rx = seen.0.subscribe();
    let worth = rx
        .wait_for(|(emails, done)| emails.len() >= need || *done)
        .await
        .map(|s| s.0.len() >= need)
        .unwrap_or(false);
    if !worth {
        return Some(out);
    }
    out.rest = read_pages(&ds, 1..pages)
        .await
        .ok()
        .map(|pages| pages.into_iter().flatten().collect());
    Some(out)
}

async fn read_pages(
    ds: &docspace_api::Client,
    pages: std::ops::Range<u64>,
) -> Result<Vec<Vec<Person>>, docspace_api::Error> {
    futures::stream::iter(pages)
        .map(|i| {
            let ds = ds.clone();
            async move {
                ds.people_page(&PeopleFilter::default(), i * PEOPLE_PAGE, PEOPLE_PAGE)
                    .await
                    .map(|(p, _)| p)
            }
        })
        .buffered(4)
        .try_collect()
        .await
}

/// The people of `emails` on the portal, keyed by lower-cased email, given what
/// [`prefetch`] read (or nothing). Absent people are absent from the map.
pub async fn resolve(
    ds: &docspace_api::Client,
    emails: &[String],
    prefetched: Option<Prefetched>,
) -> Result<HashMap<String, Person>, docspace_api::Error> {
    let mut found: HashMap<String, Person> = HashMap::new();
    if emails.is_empty() {
        return Ok(found);
    }
    let wanted: BTreeSet<String> = emails.iter().cloned().collect();
    let first_page = match prefetched {
        Some(Prefetched {
            first,
            rest: Some(rest),
            ..
        }) => {
            // The whole portal is already here.
            keep_wanted(&mut found, &wanted, first);
            keep_wanted(&mut found, &wanted, rest);
            return Ok(found);
        }
        Some(Prefetched { first, total, .. }) => Some((first, total)),
        None => None,
    };
    // A handful of emails: lookups are cheaper than even one listing page plus lookups,
    // unless that page is already here.
    let first_page = match first_page {
        Some(p) => Some(p),
        None if emails.len() > 2 => Some(
            ds.people_page(&PeopleFilter::default(), 0, PEOPLE_PAGE)
                .await?,
        ),
        None => None,
    };
    if let Some((first, total)) = first_page {
        keep_wanted(&mut found, &wanted, first);
        let pages = total.div_ceil(PEOPLE_PAGE);
        let remaining_pages = pages.saturating_sub(1);
        if remaining_pages == 0 {
            // The whole portal was on that page: whoever is not there is absent.
            return Ok(found);
        }
        let unknown = (wanted.len() - found.len()) as u64;
        if remaining_pages <= unknown {
            for page in read_pages(ds, 1..pages).await? {
                keep_wanted(&mut found, &wanted, page);
            }
            return Ok(found);
        }
    }
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|e| !found.contains_key(e))
        .collect();
    let looked: Vec<(String, Option<Person>)> = futures::stream::iter(missing)
        .map(|e| {
            let ds = ds.clone();
            async move { ds.find_person_by_email(&e).await.map(|p| (e, p)) }
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    for (e, p) in looked {
        if let Some(p) = p {
            found.insert(e, p);
        }
    }
    Ok(found)
}

fn keep_wanted(found: &mut HashMap<String, Person>, wanted: &BTreeSet<String>, page: Vec<Person>) {
    for p in page {
        if let Some(e) = p.email.as_deref().map(|e| e.trim().to_ascii_lowercase()) {
            if wanted.contains(&e) {
                found.insert(e, p);
            }
        }
    }
}
