//! The DocSpace simulator against a real HTTP client: envelopes, people lookup, the invite
//! endpoint's quirks, people lists, rooms and sharing.

use bridge_sim::docspace::InviteOutcome;
use bridge_sim::seed::DEMO_DOCSPACE_KEY;
use bridge_sim::{DocSpaceSim, DocSpaceSimOptions, DocSpaceWorld, PersonState, SimUserType};
use serde_json::{json, Value};

use crate::support::{client, docspace_demo, get, get_json, json, retry_after_secs, send};

fn api(sim: &DocSpaceSim, path: &str) -> String {
    format!("{}/api/2.0{path}", sim.base_url())
}

async fn invite(sim: &DocSpaceSim, body: Value) -> (u16, Value) {
    send(
        client()
            .post(api(sim, "/people/invite"))
            .bearer_auth(DEMO_DOCSPACE_KEY)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn unauthorized_without_or_with_wrong_key() {
    let (sim, _) = docspace_demo().await;
    let (s, b) = send(client().get(api(&sim, "/people/@self"))).await;
    assert_eq!(s, 401);
    assert_eq!(b["status"], 1);
    assert_eq!(b["statusCode"], 401);
    let (s, _) = get_json(&api(&sim, "/people/@self"), "sk-wrong").await;
    assert_eq!(s, 401);
    // The log never keeps the Authorization header.
    let logged = serde_json::to_string(&sim.requests()).unwrap();
    assert!(!logged.contains("sk-wrong") && !logged.contains(DEMO_DOCSPACE_KEY));
    assert_eq!(sim.requests()[1].status, 401);
}

#[tokio::test]
async fn self_profile_is_the_owner_in_the_success_envelope() {
    let (sim, ids) = docspace_demo().await;
    let (s, b) = get_json(&api(&sim, "/people/@self"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 200);
    assert_eq!(b["status"], 0);
    assert_eq!(b["statusCode"], 200);
    assert_eq!(b["count"], 1);
    assert!(b["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/api/2.0/people/@self"));
    assert_eq!(b["links"][0]["action"], "GET");
    assert_eq!(b["response"]["id"], ids.docspace_owner.as_str());
    assert_eq!(b["response"]["isOwner"], true);
    assert_eq!(
        b["response"]["isAdmin"], false,
        "isAdmin is false for the owner"
    );
    assert!(b.get("total").is_none());
}

#[tokio::test]
async fn lookup_by_email_found_missing_and_invalid() {
    let (sim, ids) = docspace_demo().await;
    let url = |e: &str| format!("{}?email={}", api(&sim, "/people/email"), e);
    let (s, b) = get_json(&url("BOB.ACTIVE@acme.example"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 200);
    let p = &b["response"];
    assert_eq!(p["id"], ids.person_active.as_str());
    assert_eq!(p["email"], ids.email_active.as_str());
    assert_eq!(
        (p["status"].as_i64(), p["activationStatus"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(p["isCollaborator"], true);
    assert_eq!(p["displayName"], "Bob Active");

    let (_, b) = get_json(&url(&ids.email_pending), DEMO_DOCSPACE_KEY).await;
    assert_eq!(
        (
            b["response"]["status"].as_i64(),
            b["response"]["activationStatus"].as_i64()
        ),
        (Some(4), Some(2))
    );
    assert_eq!(b["response"]["displayName"], ids.email_pending.as_str());
    let (_, b) = get_json(&url(&ids.email_disabled), DEMO_DOCSPACE_KEY).await;
    assert_eq!(b["response"]["status"], 2);

    let (s, b) = get_json(&url("nobody@acme.example"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["message"], "The user could not be found");
    assert_eq!(
        (b["status"].as_i64(), b["statusCode"].as_i64()),
        (Some(1), Some(404))
    );

    let (s, b) = get_json(&url("not-an-email"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 400);
    assert_eq!(
        b["response"]["title"],
        "One or more validation errors occurred."
    );
    assert_eq!(b["response"]["status"], 400);
    assert!(b["response"]["errors"]["email"][0].is_string());
    assert_eq!(b["statusCode"], 400);
}

#[tokio::test]
async fn invite_creates_pending_user_and_lists_every_pending_without_emails() {
    let (sim, ids) = docspace_demo().await;
    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": "new.person@acme.example", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let list = b["response"].as_array().unwrap();
    // The new one and the one that was already pending; no email field anywhere.
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|e| e.get("email").is_none()));
    let names: Vec<&str> = list
        .iter()
        .map(|e| e["displayName"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"new.person@acme.example"));
    assert!(names.contains(&ids.email_pending.as_str()));

    let (p, sent) = sim.world(|w| {
        (
            w.person_by_email("new.person@acme.example").cloned(),
            w.invitations_sent(),
        )
    });
    let p = p.unwrap();
    assert_eq!(
        (p.state, p.user_type),
        (PersonState::Pending, SimUserType::User)
    );
    assert_eq!((p.first_name.as_str(), p.last_name.as_str()), ("", ""));
    assert_eq!(sent, vec!["new.person@acme.example".to_string()]);
    assert!(sim.world(|w| w.invite_log[0].type_sent.is_u64()));
}

#[tokio::test]
async fn reinviting_active_or_pending_is_a_silent_no_op() {
    let (sim, ids) = docspace_demo().await;
    for email in [&ids.email_active, &ids.email_pending] {
        let (s, _) = invite(&sim, json!({"invitations": [{"email": email, "type": 4}]})).await;
        assert_eq!(s, 200);
    }
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": "x.y@acme.example", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": "X.Y@acme.example", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 200);
    sim.world(|w| {
        assert_eq!(w.invitations_sent(), vec!["x.y@acme.example".to_string()]);
        assert_eq!(w.invite_log[0].outcome, InviteOutcome::Unchanged);
        assert_eq!(w.invite_log[3].outcome, InviteOutcome::Unchanged);
    });
}

#[tokio::test]
async fn invite_errors_disabled_guest_bad_email_and_partial_application() {
    let (sim, ids) = docspace_demo().await;
    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": ids.email_disabled, "type": 4}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["error"]["message"],
        format!("User disabled: {}", ids.email_disabled)
    );

    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": "g@acme.example", "type": 2}]}),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(b["error"]["message"], "Access denied");
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": "g@acme.example", "type": "Guest"}]}),
    )
    .await;
    assert_eq!(s, 403);

    // Passes [EmailAddress] but not the strict check: invitations before it stay applied.
    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": "first@acme.example", "type": 4}, {"email": "bad@nodot", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["message"], "Incorrect email");
    assert!(sim.world(|w| w.person_by_email("first@acme.example").is_some()));

    // Fails model validation: nothing applied, problem details inside `response`.
    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": "second@acme.example", "type": 4}, {"email": "no-at-sign", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        b["response"]["errors"]["Invitations[1].Email"][0].is_string(),
        "{b}"
    );
    assert!(sim.world(|w| w.person_by_email("second@acme.example").is_none()));

    let (s, b) = invite(&sim, json!({})).await;
    assert_eq!(s, 400);
    assert!(b["response"]["errors"]["Invitations"].is_array());
}

#[tokio::test]
async fn type_all_or_name_is_accepted_and_recorded_as_sent() {
    let (sim, _) = docspace_demo().await;
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": "trap@acme.example", "type": "All"}]}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": "named@acme.example", "type": "user"}]}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": "weird@acme.example", "type": "Collaborator"}]}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    sim.world(|w| {
        // `All` makes a paid room admin: the seed script's trap.
        assert_eq!(
            w.person_by_email("trap@acme.example").unwrap().user_type,
            SimUserType::RoomAdmin
        );
        assert_eq!(
            w.person_by_email("named@acme.example").unwrap().user_type,
            SimUserType::User
        );
        assert_eq!(w.invite_log[0].type_sent, json!("All"));
        assert!(w.invite_log[1].type_sent.is_string());
    });
}

#[tokio::test]
async fn reinvite_with_higher_type_upgrades_without_email() {
    let (sim, ids) = docspace_demo().await;
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": ids.email_active, "type": 1}]}),
    )
    .await;
    assert_eq!(s, 200);
    sim.world(|w| {
        assert_eq!(
            w.person(&ids.person_active).unwrap().user_type,
            SimUserType::RoomAdmin
        );
        assert_eq!(w.invite_log[0].outcome, InviteOutcome::Upgraded);
        assert!(w.invitations_sent().is_empty());
    });
}

#[tokio::test]
async fn quota_exceeded_is_402() {
    let mut world = DocSpaceWorld::new();
    world.add_person("one@acme.example", SimUserType::User, PersonState::Active);
    let opts = DocSpaceSimOptions {
        max_users: Some(3),
        ..Default::default()
    };
    let sim = DocSpaceSim::start(world, opts).await.unwrap();
    let (s, _) = invite(
        &sim,
        json!({"invitations": [{"email": "two@acme.example", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, b) = invite(
        &sim,
        json!({"invitations": [{"email": "three@acme.example", "type": 4}, {"email": "four@acme.example", "type": 4}]}),
    )
    .await;
    assert_eq!(s, 402);
    assert_eq!(
        b["error"]["message"],
        "The number of users should not exceed 3"
    );
    assert_eq!(sim.world(|w| w.invitations_sent()).len(), 1);
}

#[tokio::test]
async fn people_lists_page_and_filter() {
    let mut world = DocSpaceWorld::new();
    for i in 0..7 {
        world.add_person(
            &format!("a{i}@acme.example"),
            SimUserType::User,
            PersonState::Active,
        );
    }
    world.add_person("p@acme.example", SimUserType::User, PersonState::Pending);
    world.add_person("d@acme.example", SimUserType::User, PersonState::Disabled);
    let sim = DocSpaceSim::start(world, DocSpaceSimOptions::default())
        .await
        .unwrap();
    let url = |q: &str| format!("{}{q}", api(&sim, "/people"));

    let (s, b) = get_json(&url("?count=3&startIndex=6"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 200);
    assert_eq!(
        b["total"], 8,
        "owner + 7 active; pending and disabled are not listed"
    );
    assert_eq!(b["count"], 2);
    assert_eq!(b["response"].as_array().unwrap().len(), 2);

    for bad in ["?count=0", "?count=101"] {
        let (s, b) = get_json(&url(bad), DEMO_DOCSPACE_KEY).await;
        assert_eq!(s, 400);
        assert!(b["response"]["errors"]["count"].is_array());
    }

    let (_, b) = get_json(
        &format!("{}?activationStatus=2", api(&sim, "/people/filter")),
        DEMO_DOCSPACE_KEY,
    )
    .await;
    assert_eq!(b["total"], 1);
    assert_eq!(b["response"][0]["email"], "p@acme.example");
    let (_, b) = get_json(
        &format!("{}?employeeStatus=2", api(&sim, "/people/filter")),
        DEMO_DOCSPACE_KEY,
    )
    .await;
    assert_eq!(b["response"][0]["email"], "d@acme.example");
    let (_, b) = get_json(&api(&sim, "/people/filter"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(b["total"], 10);
}

#[tokio::test]
async fn room_info_and_errors() {
    let (sim, ids) = docspace_demo().await;
    let (s, b) = get_json(
        &api(&sim, &format!("/files/rooms/{}", ids.room)),
        DEMO_DOCSPACE_KEY,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["response"]["id"], ids.room.parse::<i64>().unwrap());
    assert_eq!(b["response"]["title"], "Website relaunch");
    assert_eq!(b["response"]["roomType"], 5);
    let (s, b) = get_json(&api(&sim, "/files/rooms/999999"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 404);
    assert_eq!(b["status"], 1);
    let (s, _) = get_json(&api(&sim, "/files/rooms/abc"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 400);
    let (s, b) = get_json(&api(&sim, "/no/such/route"), DEMO_DOCSPACE_KEY).await;
    assert_eq!(s, 404);
    assert_eq!(b["statusCode"], 404);
}

async fn share(sim: &DocSpaceSim, room: &str, body: Value) -> (u16, Value) {
    send(
        client()
            .put(api(sim, &format!("/files/rooms/{room}/share")))
            .bearer_auth(DEMO_DOCSPACE_KEY)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn share_room_roles_and_traps() {
    let (sim, ids) = docspace_demo().await;
    let room = ids.room.clone();
    let new_id =
        sim.world(|w| w.add_person("x@acme.example", SimUserType::User, PersonState::Active));

    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [{"id": new_id, "access": 10}], "notify": false}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let m = &b["response"]["members"][0];
    assert_eq!(m["access"], 10);
    assert_eq!(m["subjectType"], 0);
    assert_eq!(m["sharedToUser"]["id"], new_id.as_str());
    assert_eq!(b["response"]["error"], 0);

    // RoomManager for a User-type invitee is refused.
    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [{"id": new_id, "access": 9}]}),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        b["error"]["message"],
        "The role is not available for this user type"
    );
    // FillForms is not available in a Custom room.
    let (s, _) = share(
        &sim,
        &room,
        json!({"invitations": [{"id": new_id, "access": 7}]}),
    )
    .await;
    assert_eq!(s, 403);

    // Names are read too; an unknown name means None (0) and removes the member.
    let (s, _) = share(
        &sim,
        &room,
        json!({"invitations": [{"id": new_id, "access": "Read"}]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        sim.world(|w| w.room(&room).unwrap().members.get(&new_id).copied()),
        Some(2)
    );
    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [{"id": new_id, "access": "Editor"}]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["response"]["members"].as_array().unwrap().len(), 0);
    assert_eq!(
        sim.world(|w| w.room(&room).unwrap().members.get(&new_id).copied()),
        None
    );

    // Email for an unknown address creates a guest; it is not echoed in `members`.
    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [{"email": "guest@else.example", "access": 2}]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["response"]["members"].as_array().unwrap().len(), 0);
    let guest = sim
        .world(|w| w.person_by_email("guest@else.example").cloned())
        .unwrap();
    assert_eq!(
        (guest.user_type, guest.state),
        (SimUserType::Guest, PersonState::Pending)
    );

    let (s, _) = share(&sim, "424242", json!({"invitations": []})).await;
    assert_eq!(s, 404);

    // Member list: owner first, with total.
    let (s, b) = get_json(
        &format!(
            "{}?count=2&startIndex=0",
            api(&sim, &format!("/files/rooms/{room}/share"))
        ),
        DEMO_DOCSPACE_KEY,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(b["total"], 3, "{b}");
    assert_eq!(b["response"][0]["isOwner"], true);
    assert_eq!(b["response"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let opts = DocSpaceSimOptions {
        requests_per_minute: Some(2),
        ..Default::default()
    };
    let sim = DocSpaceSim::start(DocSpaceWorld::new(), opts)
        .await
        .unwrap();
    let url = api(&sim, "/people/@self");
    for _ in 0..2 {
        let r = get(&url, DEMO_DOCSPACE_KEY).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
    }
    let r = get(&url, DEMO_DOCSPACE_KEY).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let secs: u64 = retry_after_secs(&r);
    assert!((1..=60).contains(&secs));
    let (_, b) = json(r).await;
    assert_eq!(b["statusCode"], 429);
}

/// Removal through the share endpoint, as notes §3 describes it: access 0 removes; the
/// key's user must manage the room (403 otherwise, in the server's error shape); a member
/// the key cannot see is dropped without an error (and still listed in the answer); a
/// member holding a form role is refused (`error: 1`) unless `force` is set.
#[tokio::test]
async fn share_room_removals_need_a_manager_drop_the_unseen_and_spare_form_roles() {
    let mut w = DocSpaceWorld::new();
    let room = w.add_room("Docs", 5);
    let ids: Vec<String> = ["a@x.io", "b@x.io", "c@x.io", "d@x.io"]
        .iter()
        .map(|e| w.add_person(e, SimUserType::User, PersonState::Active))
        .collect();
    for id in &ids {
        w.add_member(&room, id, 10);
    }
    w.hide_from_key(&ids[1]);
    w.give_form_role(&room, &ids[2]);
    let sim = DocSpaceSim::start(w, DocSpaceSimOptions::default())
        .await
        .unwrap();
    let remove = |id: &str| json!({"id": id, "access": 0});

    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [remove(&ids[0]), remove(&ids[1]), remove(&ids[2])], "notify": false}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["response"]["error"], 1, "form role blocking: {b}");
    let listed: Vec<&str> = b["response"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["sharedToUser"]["id"].as_str())
        .collect();
    assert_eq!(listed, vec![ids[1].as_str(), ids[2].as_str()], "{b}");
    let members = |sim: &DocSpaceSim| {
        let room = room.clone();
        sim.world(move |w| {
            w.room(&room)
                .unwrap()
                .members
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let now = members(&sim);
    assert!(!now.contains(&ids[0]), "access 0 removes");
    assert!(now.contains(&ids[1]), "unseen: dropped silently");
    assert!(now.contains(&ids[2]), "form role: refused without force");

    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [remove(&ids[2])], "notify": false, "force": true}),
    )
    .await;
    assert_eq!((s, &b["response"]["error"]), (200, &json!(0)), "{b}");
    assert!(
        !members(&sim).contains(&ids[2]),
        "force removes a form-role holder"
    );

    // Not a manager of the room any more: refused, nothing changes.
    let owner = sim.world(|w| w.owner().unwrap().id.clone());
    let r = room.clone();
    sim.world(move |w| w.add_member(&r, &owner, 2));
    let (s, b) = share(
        &sim,
        &room,
        json!({"invitations": [remove(&ids[3])], "notify": false}),
    )
    .await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["status"], 1);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("permission"),
        "{b}"
    );
    assert!(members(&sim).contains(&ids[3]));
}
