//! Intake: turn what Asana says into [`Assignment`]s — who is assigned to which task,
//! and whether we can see their email.
//!
//! Asana may omit `assignee.email` (scopes, guests, privacy), so the email is optional
//! from the first byte; a missing email is retried once through `GET /users/{gid}`
//! before we give up and report `email_hidden`.

use asana_api::{Gid, Task};

/// The fields a reconcile reads per task, for one task or a project's pages alike:
/// nothing more, to stay cheap on Asana's cost limit. `completed` lets a rule's
/// `include_completed = false` cost no second request.
pub const TASK_FIELDS: &[&str] = &["name", "completed", "assignee.email", "assignee.name"];

/// Who is assigned to one task, as far as Asana shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The task.
    pub task_gid: String,
    /// Its name, for the ledger's why.
    pub task_name: Option<String>,
    /// Whether the task is completed (`None` when Asana did not say).
    pub completed: Option<bool>,
    /// The assignee, if any.
    pub assignee: Option<Assignee>,
}

/// A task's assignee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    /// The Asana user gid.
    pub gid: String,
    /// The user's name.
    pub name: Option<String>,
    /// The user's email, as far as the token can see it.
    pub email: EmailCheck,
}

/// The three states an assignee's email can be in, each with its own outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailCheck {
    /// A usable address, lower-cased.
    Valid(String),
    /// Asana does not show it to this token.
    Hidden,
    /// Asana returned something that is not an address DocSpace would accept.
    Invalid(String),
}

impl Assignment {
    /// The assignment of a task as Asana returned it (taken apart, not copied: a sync
    /// makes one per task read).
    pub fn from_task(task: Task) -> Assignment {
        Assignment {
            task_gid: task.gid,
            task_name: task.name,
            completed: task.completed,
            assignee: task.assignee.map(|a| Assignee {
                email: check_email(a.email.as_deref()),
                gid: a.gid,
                name: a.name,
            }),
        }
    }
}

/// Reads one task with [`TASK_FIELDS`].
pub async fn read_task(
    asana: &asana_api::Client,
    task: &Gid,
) -> Result<Assignment, asana_api::Error> {
    Ok(Assignment::from_task(
        asana.get_task(task, TASK_FIELDS).await?,
    ))
}

/// `GET /users/{gid}?opt_fields=email`; a 403/404 here means "not visible", not a failure.
pub async fn lookup_email(
    asana: &asana_api::Client,
    user_gid: &str,
) -> Result<EmailCheck, asana_api::Error> {
    match asana.get_user(user_gid, &["email"]).await {
        Ok(u) => Ok(check_email(u.email.as_deref())),
        Err(e) if matches!(e.status(), Some(403) | Some(404)) => Ok(EmailCheck::Hidden),
        Err(e) => Err(e),
    }
}

/// Normalise and sanity-check an address the way DocSpace's `[EmailAddress]` and
/// 255-character limit would, so a bad address fails here, before any DocSpace call.
pub fn check_email(raw: Option<&str>) -> EmailCheck {
    let Some(raw) = raw else {
        return EmailCheck::Hidden;
    };
    let e = raw.trim();
    if e.is_empty() {
        return EmailCheck::Hidden;
    }
    let valid = e.len() <= 255
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == ';')
        && match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.starts_with("xn--")
                    && !domain.contains(".xn--")
            }
            None => false,
        };
    if valid {
        // DocSpace matches emails case-insensitively; one canonical form dedupes assignees.
        EmailCheck::Valid(e.to_ascii_lowercase())
    } else {
        EmailCheck::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_normalised() {
        assert_eq!(
            check_email(Some(" Ann@Example.COM ")),
            EmailCheck::Valid("ann@example.com".into())
        );
        assert_eq!(check_email(None), EmailCheck::Hidden);
        assert_eq!(check_email(Some("")), EmailCheck::Hidden);
        for bad in [
            "no-at-sign",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@xn--80ak6aa92e.com",
        ] {
            assert!(
                matches!(check_email(Some(bad)), EmailCheck::Invalid(_)),
                "{bad}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(matches!(check_email(Some(&long)), EmailCheck::Invalid(_)));
    }
}
