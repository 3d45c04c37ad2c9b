//! `sim`: serve both simulators with the demo data until Ctrl-C, and print the
//! environment that points the CLI at them.

use std::net::SocketAddr;
use std::time::Duration;

use bridge_sim::{seed, AsanaSim, AsanaSimOptions, DocSpaceSim, DocSpaceSimOptions};

use crate::args::SimArgs;

pub async fn run(a: SimArgs) -> anyhow::Result<u8> {
    let (asana_world, docspace_world, ids) = seed::demo();
    let asana = AsanaSim::start(
        asana_world,
        AsanaSimOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], a.asana_port)),
            ..Default::default()
        },
    )
    .await?;
    let docspace = DocSpaceSim::start(
        docspace_world,
        DocSpaceSimOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], a.docspace_port)),
            ..Default::default()
        },
    )
    .await?;
    if a.latency_ms > 0 {
        asana.set_latency(Duration::from_millis(a.latency_ms));
        docspace.set_latency(Duration::from_millis(a.latency_ms));
    }
    // These are the simulators' own demo credentials, not anybody's secrets.
    println!("# Simulators are running (Ctrl-C stops them). Point the CLI at them with:");
    println!("export ASANA_BASE_URL={}", asana.base_url());
    println!("export ASANA_TOKEN={}", seed::DEMO_ASANA_TOKEN);
    println!("export DOCSPACE_URL={}", docspace.base_url());
    println!("export DOCSPACE_API_KEY={}", seed::DEMO_DOCSPACE_KEY);
    println!("#");
    println!("# Try:");
    println!(
        "#   asana-docspace invite --task {}        # assignee not yet in DocSpace",
        ids.task_new_assignee
    );
    println!(
        "#   asana-docspace invite --task {}        # already a member",
        ids.task_active_member
    );
    println!(
        "#   asana-docspace invite --task {}        # no assignee (exit 3)",
        ids.task_unassigned
    );
    println!(
        "#   asana-docspace invite --task {} --room {} --access editing",
        ids.task_onboarding_new, ids.room
    );
    println!(
        "#   asana-docspace add-to-workspace --workspace {} --user new.person@acme.example",
        ids.workspace
    );
    println!("# Demo rules for `sync`:");
    println!(
        "#   [[rules]] project = \"{}\"  room = \"{}\"  access = \"editing\"",
        ids.project_website, ids.room
    );
    println!("#   [[rules]] project = \"{}\"", ids.project_onboarding);
    tokio::signal::ctrl_c().await?;
    asana.shutdown().await;
    docspace.shutdown().await;
    Ok(crate::exit::OK)
}
