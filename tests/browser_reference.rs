//! The API reference page in a real headless Chromium: it renders every route from the
//! server's own OpenAPI document, with the fields of each body, and logs no errors.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::TestApp;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn the_api_reference_renders_every_route_with_its_fields() {
    let app = TestApp::spawn();
    let Some(b) = browser::launch(1280, 900).await else { return };
    b.client.goto(&format!("{}/api-reference", app.base)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rendered = loop {
        let v = b
            .client
            .execute("return document.querySelectorAll('section.route').length", vec![])
            .await
            .unwrap();
        if v.as_u64().unwrap_or(0) > 0 {
            break v.as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "the reference never rendered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let doc = app.get("/api/v1/openapi.json", None);
    let documented: usize =
        doc.body["paths"].as_object().unwrap().values().map(|o| o.as_object().unwrap().len()).sum();
    assert_eq!(rendered as usize, documented, "one section per documented route");
    let create = b
        .client
        .execute("return document.getElementById('post-api-v1-experiments').innerText", vec![])
        .await
        .unwrap();
    let create = create.as_str().unwrap_or("");
    for field in ["traffic_allocation", "variants", "goal", "created_at"] {
        assert!(create.contains(field), "POST /experiments shows {field}: {create}");
    }
    b.screenshot("api-reference").await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.close().await;
}
