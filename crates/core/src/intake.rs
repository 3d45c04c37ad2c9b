//! Intake: turn what Asana says into [`Assignment`]s — who is assigned to which task,
//! and whether we can see their email.
//!
//! Asana may omit `assignee.email` (scopes, guests, privacy), so the email is optional
//! from the first byte; a missing email is retried once through `GET /users/{gid}`
//! before we give up and report `email_hidden`.

use asana_api::{Gid, Task};

/// The fields `invite` needs from a task: nothing more, to stay cheap on Asana's cost limit.
pub const TASK_FIELDS: &[&str] = &["name", "assignee.email", "assignee.name"];

/// The fields `sync` needs per task when paging a project.
pub const PROJECT_TASK_FIELDS: &[&str] = &["name", "completed", "assignee.email", "assignee.name"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub task_gid: String,
    pub task_name: Option<String>,
    pub assignee: Option<Assignee>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignee {
    pub gid: String,
    pub name: Option<String>,
    pub email: EmailCheck,
}

/// The three states an assignee's email can be in, each with its own outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailCheck {
    Valid(String),
    Hidden,
    /// Asana returned something that is not an address DocSpace would accept.
    Invalid(String),
}

impl Assignment {
    pub fn from_task(task: &Task) -> Assignment {
        Assignment {
            task_gid: task.gid.clone(),
            task_name: task.name.clone(),
            assignee: task.assignee.as_ref().map(|a| Assignee {
                gid: a.gid.clone(),
                name: a.name.clone(),
                email: check_email(a.email.as_deref()),
            }),
        }
    }
}

/// Read one task and its assignee's email, falling back to the user record when the
/// task's compact assignee lacks it.
pub async fn read_task(
    asana: &asana_api::Client,
    task: &Gid,
) -> Result<Assignment, asana_api::Error> {
    Ok(read_task_fields(asana, task, TASK_FIELDS).await?.0)
}

/// [`read_task`] with the caller's `opt_fields` (a superset of [`TASK_FIELDS`]), also
/// returning the task itself: the webhook worker asks for `completed` in the same call, so
/// a rule's `include_completed = false` costs no second request.
pub async fn read_task_fields(
    asana: &asana_api::Client,
    task: &Gid,
    fields: &[&str],
) -> Result<(Assignment, Task), asana_api::Error> {
    let t = asana.get_task(task, fields).await?;
    let mut a = Assignment::from_task(&t);
    if let Some(assignee) = a.assignee.as_mut() {
        if assignee.email == EmailCheck::Hidden {
            assignee.email = lookup_email(asana, &assignee.gid).await?;
        }
    }
    Ok((a, t))
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
