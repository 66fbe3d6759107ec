//! A full VM restore's networks, with the demo lab's web-01 on real libvirt
//! hosts: the check lists each NIC with where it lands and what is
//! proposed (the recommendation, or the mapping saved for the platform
//! pair on the Networks page); a restore sent with a network map attaches
//! the restored VM's NICs to those networks on the target host (read back
//! from the host); a map naming a network the target lacks is a 422; a NIC
//! left without a network is a blocker of the check and a 409 of start.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, catalog as lab_catalog, InitOptions};
use serde_json::{json, Value};
use shared_types::jobs::Job;
use shared_types::platform::PlatformKind;
use shared_types::recovery::{CompatibilityReport, NoteSeverity, SuggestionReason};

mod support;

use support::api::Api;
use support::kvm::TestHost;

/// Source network → (target network, suggestion, reason) of a report.
fn placements(r: &CompatibilityReport) -> BTreeMap<String, (Option<String>, Option<String>, Option<SuggestionReason>)> {
    r.nics
        .iter()
        .map(|n| {
            let s = n.suggestion.as_ref();
            (n.source_network.clone(), (n.target_network.clone(), s.map(|s| s.network.clone()), s.map(|s| s.reason)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_attaches_the_nics_to_the_chosen_networks() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let (prod_host, dr_host) =
        tokio::join!(TestHost::start(lab_dir.join("hosts").join(lab_catalog::PROD_HOST)), TestHost::start(lab_dir.join("hosts").join(lab_catalog::DR_HOST)));
    let prod = api.add_host(&prod_host).await;
    let dr = api.add_host(&dr_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);
    let backup = api.back_up(&vm, "full").await;
    let body = |name: &str, map: Value| json!({"backup_id": backup, "target_platform_id": dr.id, "name": name, "network_mapping": map});

    // Without a map: each NIC (web-01 is on dmz and lan) joins the DR
    // network of its name, which is also what the recommendation proposes.
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-r1", json!({}))), StatusCode::OK).await;
    assert!(report.ok, "{report:?}");
    let p = placements(&report);
    assert_eq!(p.keys().map(String::as_str).collect::<Vec<_>>(), ["dmz", "lan"], "{p:?}");
    for net in ["dmz", "lan"] {
        assert_eq!(p[net], (Some(net.to_owned()), Some(net.to_owned()), Some(SuggestionReason::Recommended)), "{net}: {p:?}");
    }
    assert!(report.nics.iter().all(|n| n.mac.starts_with("52:54:00:") && !n.model.is_empty()), "{:?}", report.nics);
    let choices: Vec<&str> = report.target_networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(choices, ["dmz", "isolated", "lan", "storage"], "the DR host's started networks");

    // A mapping saved on the Networks page (lan -> storage) is proposed over the recommendation.
    let saved = json!({"source_platform_id": prod.id, "source_network": "lan", "target_platform_id": dr.id, "target_network": "storage", "purpose": "failover"});
    let _: Value = api.ok("POST", "/api/v1/network-mappings", Some(saved), StatusCode::CREATED).await;
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-r1", json!({}))), StatusCode::OK).await;
    let p = placements(&report);
    assert_eq!(p["lan"], (Some("lan".to_owned()), Some("storage".to_owned()), Some(SuggestionReason::SavedMapping)), "{p:?}");
    assert_eq!(p["dmz"].2, Some(SuggestionReason::Recommended));

    // A map naming a network the DR host lacks: 422 naming it, for check and start.
    for path in ["/api/v1/restore/check", "/api/v1/restore/start"] {
        let m = api.refused(path, body("web-01-r1", json!({"lan": "no-such-net"})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_value").await;
        assert!(m.contains("no-such-net") && m.contains("isolated"), "{m}");
    }

    // The restore with the choices: dmz -> isolated, lan -> storage (as proposed).
    let map = json!({"dmz": "isolated", "lan": "storage"});
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-r1", map.clone())), StatusCode::OK).await;
    assert!(report.ok, "{report:?}");
    let p = placements(&report);
    assert_eq!((p["dmz"].0.as_deref(), p["lan"].0.as_deref()), (Some("isolated"), Some("storage")), "{p:?}");
    let job: Job = api.ok("POST", "/api/v1/restore/start", Some(body("web-01-r1", map)), StatusCode::ACCEPTED).await;
    let done = api.wait(&job.id, 180).await;
    assert_eq!(done["job"]["status"], "completed", "{done}");

    // On the DR host, each NIC of the restored VM (by its model and order) is on the chosen network.
    let inv = sendense::catalog::inventory::read(PlatformKind::Kvm, dr_host.uri()).await.unwrap();
    let restored = inv.vms.iter().find(|v| v.name == "web-01-r1").expect("the restored VM on the DR host");
    let source = report.nics.iter().map(|n| n.target_network.clone().unwrap()).collect::<Vec<_>>();
    let attached: Vec<String> = restored.nics.iter().map(|n| n.network.clone()).collect();
    assert_eq!(attached, source, "the restored VM's NICs, in order");
    let mut sorted = attached.clone();
    sorted.sort();
    assert_eq!(sorted, ["isolated", "storage"]);

    // A NIC without a network (its network's name is not on the target and
    // the map leaves it out) is a blocker: the DR host loses its dmz network.
    let conn = sendense::platforms::libvirt::open(&dr_host.uri()).unwrap();
    let dmz = conn.lookup_network_by_name("dmz").unwrap();
    dmz.destroy().unwrap();
    dmz.undefine().unwrap();
    let report: CompatibilityReport = api.ok("POST", "/api/v1/restore/check", Some(body("web-01-r2", json!({}))), StatusCode::OK).await;
    assert!(!report.ok, "{report:?}");
    let p = placements(&report);
    assert_eq!(p["dmz"].0, None, "{p:?}");
    assert!(report.notes.iter().any(|n| n.severity == NoteSeverity::Blocker && n.message.contains("'dmz'") && n.message.contains("map it")), "{:?}", report.notes);
    let m = api.refused("/api/v1/restore/start", body("web-01-r2", json!({})), StatusCode::CONFLICT, "restore_blocked").await;
    assert!(m.contains("'dmz'"), "{m}");
}
