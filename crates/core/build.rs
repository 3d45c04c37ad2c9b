//! Rebuilds the crate when a migration file is added: `sqlx::migrate!` embeds them.

fn main() {
    // sqlx::migrate! embeds the migration files; a new file must trigger a rebuild.
    println!("cargo:rerun-if-changed=migrations");
}
