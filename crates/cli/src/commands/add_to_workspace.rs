use serde::Serialize;

use crate::args::{AddToWorkspaceArgs, Global};
use crate::{output, settings, usage};

#[derive(Serialize)]
struct AddedUser<'a> {
    workspace: &'a str,
    gid: &'a str,
    name: Option<&'a str>,
    email: Option<&'a str>,
    outcome: &'static str,
}

pub async fn run(g: &Global, a: AddToWorkspaceArgs) -> anyhow::Result<u8> {
    let workspace =
        asana_api::Gid::parse(&a.workspace).map_err(|e| usage(format!("--workspace: {e}")))?;
    let user = a.user.trim();
    use bridge_core::intake::{check_email, EmailCheck};
    let valid = user == "me"
        || asana_api::Gid::parse(user).is_ok()
        || (user.contains('@') && matches!(check_email(Some(user)), EmailCheck::Valid(_)));
    if !valid {
        return Err(usage(format!(
            "--user {user:?}: expected an email address, a user gid (digits) or `me`"
        )));
    }
    let file = settings::file_config(g)?;
    let asana = settings::asana(g, &file)?;
    let added = asana.add_user_to_workspace(&workspace, user).await.map_err(|e| match e.status() {
        Some(403) => anyhow::Error::from(crate::Exit {
            code: crate::exit::FAILURE,
            message: format!(
                "Asana refused (403): the token's user must be allowed to invite people to workspace {workspace} \
                 (usually an admin of the organization). Asana said: {e}"
            ),
        }),
        Some(404) => usage(format!("Asana has no workspace {workspace} or no user {user:?} visible to this token: {e}")),
        Some(400) => usage(format!("Asana rejected the request: {e}")),
        _ => crate::from_core(e.into()),
    })?;
    if g.json {
        output::json_line(&AddedUser {
            workspace: workspace.as_str(),
            gid: &added.gid,
            name: added.name.as_deref(),
            email: added.email.as_deref(),
            outcome: "added",
        });
    } else {
        println!(
            "added to workspace {workspace}: {} <{}> (gid {})",
            added.name.as_deref().unwrap_or("(no name)"),
            added.email.as_deref().unwrap_or("email hidden"),
            added.gid
        );
    }
    Ok(crate::exit::OK)
}
