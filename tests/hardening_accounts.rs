//! Issue 11, item 8: an admin can lock a user out. Disabling, removing and a password change
//! end a user's access at once; admins revoke any key; the last admin stays.

mod common;

use common::{TestApp, ab_body};
use serde_json::{Value, json};

const MEMBER: &str = "m@example.com";
const MEMBER_PW: &str = "member password";

/// An admin (token), and a member: (id, session token, API key, API key id).
struct Setup {
    admin: String,
    member_id: String,
    member: String,
    member_key: String,
    member_key_id: String,
}

fn setup(app: &TestApp) -> Setup {
    let admin = app.register("root@example.com");
    let body = json!({"email": MEMBER, "password": MEMBER_PW, "role": "member"});
    let r = app.post("/api/v1/users", Some(&admin), &body);
    assert_eq!(r.status, 201, "{}", r.text);
    let member_id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["disabled"], false);
    let member = app.login(MEMBER, MEMBER_PW);
    let k = app.post("/api/v1/api-keys", Some(&member), &json!({"name": "ci"}));
    assert_eq!(k.status, 201, "{}", k.text);
    Setup {
        admin,
        member_id,
        member,
        member_key: k.body["key"].as_str().unwrap().to_string(),
        member_key_id: k.body["id"].as_str().unwrap().to_string(),
    }
}

fn me(app: &TestApp, token: &str) -> u16 {
    app.get("/api/v1/auth/me", Some(token)).status
}

fn login_status(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let r = app.post("/api/v1/auth/token", None, &json!({"email": email, "password": password}));
    (r.status, r.body)
}

fn actions(app: &TestApp, token: &str) -> Vec<String> {
    let r = app.get("/api/v1/audit", Some(token));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn disabling_locks_out_at_once_and_enabling_brings_back_keys_not_sessions() {
    let app = TestApp::spawn();
    let s = setup(&app);
    assert_eq!(me(&app, &s.member), 200);
    assert_eq!(me(&app, &s.member_key), 200);

    let user = format!("/api/v1/users/{}", s.member_id);
    let r = app.patch(&user, Some(&s.admin), &json!({"disabled": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["disabled"], true);
    assert_eq!(r.body["email"], MEMBER);
    assert_eq!(me(&app, &s.member), 401, "the session ends at once");
    assert_eq!(me(&app, &s.member_key), 401, "the API key stops at once");
    let (status, body) = login_status(&app, MEMBER, MEMBER_PW);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "INVALID_CREDENTIALS");
    assert!(!body.to_string().contains("disabled"), "a login does not reveal it: {body}");
    let list = app.get("/api/v1/users", Some(&s.admin));
    let listed = list.body["items"].as_array().unwrap().iter().find(|u| u["email"] == MEMBER);
    assert_eq!(listed.unwrap()["disabled"], true);

    let r = app.patch(&user, Some(&s.admin), &json!({"disabled": false}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["disabled"], false);
    assert_eq!(me(&app, &s.member_key), 200, "the API key works again");
    assert_eq!(me(&app, &s.member), 401, "a session from before the disable stays ended");
    let fresh = app.login(MEMBER, MEMBER_PW);
    assert_eq!(me(&app, &fresh), 200);
    let acts = actions(&app, &fresh);
    assert!(acts.contains(&"user.disabled".to_string()), "{acts:?}");
    assert!(acts.contains(&"user.enabled".to_string()), "{acts:?}");

    // Rename and role changes go through the same route and are audited too.
    let r = app.patch(&user, Some(&s.admin), &json!({"name": "Ana", "role": "admin"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.body["name"].as_str(), r.body["role"].as_str()), (Some("Ana"), Some("admin")));
    assert_eq!(me(&app, &fresh), 200, "a rename or promotion keeps the session");
    assert!(actions(&app, &fresh).contains(&"user.changed".to_string()));
    let r = app.patch(&user, Some(&s.admin), &json!({"role": "owner"}));
    assert_eq!(r.status, 422, "{}", r.text);
    let r = app.patch(&user, Some(&s.admin), &json!({"suspended": true}));
    assert_eq!(r.status, 422, "unknown fields are refused: {}", r.text);
    let r = app.patch(
        "/api/v1/users/00000000-0000-0000-0000-000000000000",
        Some(&s.admin),
        &json!({"disabled": true}),
    );
    assert_eq!((r.status, r.code()), (404, "USER_NOT_FOUND"));
}

#[test]
fn members_cannot_change_or_remove_users() {
    let app = TestApp::spawn();
    let s = setup(&app);
    let admin_id =
        app.get("/api/v1/auth/me", Some(&s.admin)).body["id"].as_str().unwrap().to_string();
    let r = app.patch(
        &format!("/api/v1/users/{admin_id}"),
        Some(&s.member),
        &json!({"disabled": true}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.delete(&format!("/api/v1/users/{admin_id}"), Some(&s.member));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(app.patch(&format!("/api/v1/users/{admin_id}"), None, &json!({})).status, 401);
    assert_eq!(me(&app, &s.admin), 200);
}

#[test]
fn a_password_change_ends_older_sessions() {
    let app = TestApp::spawn();
    let s = setup(&app);
    let (code, out, err) =
        app.cli(&["user", "set-password", "--email", MEMBER], Some("another long password\n"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(me(&app, &s.member), 401, "the old session token is dead");
    assert_eq!(me(&app, &s.member_key), 200, "API keys are not sessions: they stay");
    assert_eq!(login_status(&app, MEMBER, MEMBER_PW).0, 401);
    let fresh = app.login(MEMBER, "another long password");
    assert_eq!(me(&app, &fresh), 200);
    assert!(actions(&app, &fresh).contains(&"user.password_changed".to_string()));
}

#[test]
fn an_admin_revokes_any_key_and_a_member_only_their_own() {
    let app = TestApp::spawn();
    let s = setup(&app);
    let k = app.post("/api/v1/api-keys", Some(&s.admin), &json!({"name": "admin key"}));
    let (admin_key, admin_key_id) =
        (k.body["key"].as_str().unwrap().to_string(), k.body["id"].as_str().unwrap().to_string());

    let r = app.delete(&format!("/api/v1/api-keys/{admin_key_id}"), Some(&s.member));
    assert_eq!((r.status, r.code()), (404, "API_KEY_NOT_FOUND"), "{}", r.text);
    assert_eq!(me(&app, &admin_key), 200, "the admin's key survives a member's attempt");

    let r = app.delete(&format!("/api/v1/api-keys/{}", s.member_key_id), Some(&s.admin));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(me(&app, &s.member_key), 401);
    let r = app.delete(&format!("/api/v1/api-keys/{}", s.member_key_id), Some(&s.admin));
    assert_eq!(r.status, 404, "revoked once");
    let acts = actions(&app, &s.member);
    assert!(acts.contains(&"api_key.revoked".to_string()), "in the owner's trail: {acts:?}");
}

#[test]
fn the_last_admin_can_be_neither_disabled_demoted_nor_removed() {
    let app = TestApp::spawn();
    let s = setup(&app);
    let admin_id =
        app.get("/api/v1/auth/me", Some(&s.admin)).body["id"].as_str().unwrap().to_string();
    let admin = format!("/api/v1/users/{admin_id}");
    for body in [json!({"disabled": true}), json!({"role": "member"})] {
        let r = app.patch(&admin, Some(&s.admin), &body);
        assert_eq!((r.status, r.code()), (409, "INVALID_TRANSITION"), "{body}: {}", r.text);
    }
    let r = app.delete(&admin, Some(&s.admin));
    assert_eq!((r.status, r.code()), (409, "INVALID_TRANSITION"), "{}", r.text);
    assert_eq!(me(&app, &s.admin), 200, "nothing changed");
    let (code, _, err) = app.cli(&["user", "disable", "--email", "root@example.com"], None);
    assert_ne!(code, 0);
    assert!(err.contains("last admin"), "{err}");

    // With a second admin, the first may go.
    let r = app.patch(
        &format!("/api/v1/users/{}", s.member_id),
        Some(&s.admin),
        &json!({"role": "admin"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.patch(&admin, Some(&s.admin), &json!({"disabled": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(me(&app, &s.admin), 401);
    // Now the member-turned-admin is the last enabled admin.
    let r = app.delete(&format!("/api/v1/users/{}", s.member_id), Some(&s.member));
    assert_eq!((r.status, r.code()), (409, "INVALID_TRANSITION"), "{}", r.text);
}

#[test]
fn removing_a_user_ends_their_tokens_keys_and_tracker() {
    let app = TestApp::spawn();
    let s = setup(&app);
    let sk = app.site_key(&s.member);
    let exp = app.running_ab(&s.member, ab_body("theirs"))["id"].as_str().unwrap().to_string();
    assert_eq!(app.assign(&sk, &exp, "v1").status, 200);

    let r = app.delete(&format!("/api/v1/users/{}", s.member_id), Some(&s.admin));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(me(&app, &s.member), 401);
    assert_eq!(me(&app, &s.member_key), 401);
    assert_eq!(login_status(&app, MEMBER, MEMBER_PW).0, 401);
    assert_eq!(app.assign(&sk, &exp, "v2").status, 401, "their site key is gone");
    let list = app.get("/api/v1/users", Some(&s.admin)).body;
    assert!(!list.to_string().contains(MEMBER), "{list}");
    let r = app.delete(&format!("/api/v1/users/{}", s.member_id), Some(&s.admin));
    assert_eq!((r.status, r.code()), (404, "USER_NOT_FOUND"));
    // The email is free again, and the new account has nothing of the old one.
    let body = json!({"email": MEMBER, "password": MEMBER_PW});
    assert_eq!(app.post("/api/v1/users", Some(&s.admin), &body).status, 201);
    let again = app.login(MEMBER, MEMBER_PW);
    assert_eq!(app.get(&format!("/api/v1/experiments/{exp}"), Some(&again)).status, 404);
    assert_eq!(me(&app, &s.member), 401, "the old token does not fit the new account");
}

#[test]
fn cli_disable_enable_remove_with_and_without_a_server() {
    let mut app = TestApp::spawn();
    let s = setup(&app);
    let body = json!({"email": "other@example.com", "password": "other password"});
    assert_eq!(app.post("/api/v1/users", Some(&s.admin), &body).status, 201);

    // Offline: the server is stopped and the CLI opens the data dir itself.
    app.stop();
    let (code, out, err) = app.cli(&["user", "disable", "--email", MEMBER], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("disabled"), "{out}");
    let (code, out, err) = app.cli(&["user", "remove", "--email", "other@example.com"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("removed other@example.com"), "{out}");
    let (code, _, err) = app.cli(&["user", "enable", "--email", "nobody@example.com"], None);
    assert_ne!(code, 0);
    assert!(err.contains("nobody@example.com"), "{err}");
    app.start();
    assert_eq!(me(&app, &s.member_key), 401, "disabled offline, refused online");
    assert_eq!(login_status(&app, "other@example.com", "other password").0, 401);

    // Online: the commands go over the running server's admin socket, so it sees them at
    // once.
    let (code, out, err) = app.cli(&["user", "enable", "--email", MEMBER], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("enabled"), "{out}");
    assert_eq!(me(&app, &s.member_key), 200);
    let (code, out, err) = app.cli(&["user", "disable", "--email", MEMBER], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(me(&app, &s.member_key), 401);
    let (code, out, err) = app.cli(&["user", "remove", "--email", MEMBER], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(login_status(&app, MEMBER, MEMBER_PW).0, 401);
    let (code, out, _) = app.cli(&["user", "list"], None);
    assert_eq!(code, 0);
    assert!(!out.contains(MEMBER) && out.contains("root@example.com"), "{out}");
}
