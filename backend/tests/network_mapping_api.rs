//! Network mapping for failover through the API, on the real demo lab: the
//! production and DR hosts registered and discovered, every production VM
//! managed; recommendations prod → DR (by name, VLAN and subnet pattern;
//! isolated only for tests), bulk mapping then validation of every VM,
//! an unmapped NIC named in the report, the isolation rule (422), duplicates
//! (409), unknown ids (404), all-or-nothing bulk writes, a flow's own
//! mapping over the default, the library's `resolve`, the topology, roles
//! and the audit log.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use sendense::catalog::network_mapping::{self, MappingError};
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, catalog as lab_catalog, InitOptions};
use serde_json::{json, Value};
use shared_types::audit::AuditPage;
use shared_types::auth::Role;
use shared_types::discovery::{BulkAddResponse, DiscoverVmsResponse, Platform};
use shared_types::error::ErrorBody;
use shared_types::flow::Flow;
use shared_types::networks::{
    BulkMappingResult, MappingPurpose, MappingScope, NetworkMapping, Recommendations, Topology, ValidationReport,
};
use shared_types::recovery::NoteSeverity;

mod support;
use support::kvm::TestHost;

struct Api {
    f: support::Fixture,
    token: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> support::Reply {
        self.f.call(method, path, Some(&self.token), body).await
    }

    async fn ok<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Option<Value>, status: StatusCode) -> T {
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        reply.json()
    }

    /// A refused request: checks its status and code, returns the body.
    async fn refused(&self, method: &str, path: &str, body: Option<Value>, status: StatusCode, code: &str) -> ErrorBody {
        let reply = self.call(method, path, body.clone()).await;
        assert_eq!(reply.status, status, "{method} {path} {body:?}: {}", reply.body);
        let e: ErrorBody = reply.json();
        assert_eq!(e.code, code, "{method} {path} {body:?}: {}", reply.body);
        e
    }

    async fn validate(&self, vm_ids: &[String], target: &str, flow_id: Option<&str>, purpose: &str) -> ValidationReport {
        let body = json!({"vm_ids": vm_ids, "target_platform_id": target, "flow_id": flow_id, "purpose": purpose});
        self.ok("POST", "/api/v1/networks/validate", Some(body), StatusCode::OK).await
    }
}

fn blockers(r: &ValidationReport) -> Vec<String> {
    r.vms
        .iter()
        .flat_map(|v| v.issues.iter().chain(v.nics.iter().flat_map(|n| n.issues.iter())))
        .filter(|n| n.severity == NoteSeverity::Blocker)
        .map(|n| n.message.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_networks_are_recommended_mapped_in_bulk_and_validated_before_failover() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    let repo = ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let token = f.admin_token().await;
    let api = Api { f, token };

    // Both lab hosts registered (which discovers their networks), every production VM managed.
    let (prod_host, dr_host) =
        tokio::join!(TestHost::start(lab_dir.join("hosts").join(lab_catalog::PROD_HOST)), TestHost::start(lab_dir.join("hosts").join(lab_catalog::DR_HOST)));
    let prod: Platform = api.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": prod_host.uri()})), StatusCode::CREATED).await;
    let dr: Platform = api.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": dr_host.uri()})), StatusCode::CREATED).await;
    let found: DiscoverVmsResponse = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod.id})), StatusCode::OK).await;
    let ids: Vec<String> = found.vms.iter().map(|v| v.vm.id.clone()).collect();
    let added: BulkAddResponse =
        api.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod.id, "vm_ids": ids})), StatusCode::OK).await;
    assert_eq!(added.added.len(), 6);
    let vm_ids: Vec<String> = added.added.iter().map(|v| v.id.clone()).collect();
    let vm_id = |name: &str| added.added.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("{name} managed")).id.clone();

    // The DR host's networks as discovered: the isolated one, and no VLAN
    // tags (libvirt's Linux-bridge networks carry none).
    let dr_now: Platform = api.ok("GET", &format!("/api/v1/platforms/{}", dr.id), None, StatusCode::OK).await;
    let mut dr_nets: Vec<(&str, Option<u16>, bool)> = dr_now.networks.iter().map(|n| (n.name.as_str(), n.vlan, n.isolated)).collect();
    dr_nets.sort();
    assert_eq!(dr_nets, [("dmz", None, false), ("isolated", None, true), ("lan", None, false), ("storage", None, false)]);

    // Recommendations prod → DR for a failover: the same name and subnet pattern.
    let rec_path = |purpose: &str| format!("/api/v1/networks/recommendations?source_platform_id={}&target_platform_id={}&purpose={purpose}", prod.id, dr.id);
    let rec: Recommendations = api.ok("GET", &rec_path("failover"), None, StatusCode::OK).await;
    let pairs: Vec<(&str, &str, u8)> = rec.recommendations.iter().map(|r| (r.source_network.as_str(), r.target_network.as_str(), r.score)).collect();
    // The hosts keep the lab's subnets unless another host on this machine
    // routes them already (then each network got a free one): the score
    // has the addressing-pattern bonus only in the first case.
    let kept = dr_now.networks.iter().any(|n| n.cidr.as_deref() == Some("10.110.0.0/24"));
    let score = if kept { 94 } else { 91 };
    assert_eq!(pairs, [("dmz", "dmz", score), ("lan", "lan", score), ("storage", "storage", score)], "the same name (and one addressing pattern)");
    assert!(rec.unmatched.is_empty(), "{rec:?}");
    let lan_reasons = &rec.recommendations.iter().find(|r| r.source_network == "lan").unwrap().reasons;
    assert_eq!(lan_reasons[0], "same name 'lan'");
    if kept {
        assert_eq!(lan_reasons[1..], ["subnets follow one addressing pattern (10.10.0.0/24 and 10.110.0.0/24)"]);
    }
    // For a test: the isolated network only.
    let test_rec: Recommendations = api.ok("GET", &rec_path("test"), None, StatusCode::OK).await;
    assert_eq!(test_rec.purpose, MappingPurpose::Test);
    assert_eq!(test_rec.recommendations.len(), 3, "{test_rec:?}");
    assert!(test_rec.recommendations.iter().all(|r| r.target_network == "isolated"), "{test_rec:?}");
    assert!(test_rec.recommendations[0].reasons.iter().any(|m| m.contains("isolated network (no uplink)")), "{test_rec:?}");
    // The purpose defaults to failover; a bad one or a missing platform is a 400.
    let default: Recommendations = api
        .ok("GET", &format!("/api/v1/networks/recommendations?source_platform_id={}&target_platform_id={}", prod.id, dr.id), None, StatusCode::OK)
        .await;
    assert_eq!(default.recommendations, rec.recommendations);
    assert_eq!(api.call("GET", &rec_path("live"), None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.call("GET", &format!("/api/v1/networks/recommendations?source_platform_id={}", prod.id), None).await.status, StatusCode::BAD_REQUEST);

    // Nothing mapped yet: every NIC is a blocker naming the VM, the NIC and the recommendation.
    let before = api.validate(&vm_ids, &dr.id, None, "failover").await;
    let nic_count: usize = lab_catalog::hosts()[0].vms.iter().map(|v| v.nics.len()).sum();
    assert!(!before.ok);
    assert_eq!(before.blockers as usize, nic_count, "{before:?}");
    let web = before.vms.iter().find(|v| v.vm_name == "web-01").unwrap();
    assert!(!web.ok && web.nics.iter().all(|n| n.target_network.is_none()));
    let first = &web.nics[0];
    assert_eq!((first.index, first.source_network.as_str()), (0, "dmz"));
    assert_eq!(first.mac, lab_catalog::mac("web-01", 0));
    assert!(
        first.issues[0].message.starts_with(&format!("NIC 1 ({}) of 'web-01' is on 'dmz', which has no failover mapping from 'kvm-prod-01' to 'kvm-dr-01'", first.mac))
            && first.issues[0].message.contains("recommended: 'dmz' (same name 'dmz'"),
        "{:?}",
        first.issues
    );

    // Bulk mapping as recommended; then every lab VM validates.
    let mappings: Vec<Value> = rec.recommendations.iter().map(|r| json!({"source_network": r.source_network, "target_network": r.target_network})).collect();
    let bulk = json!({"source_platform_id": prod.id, "target_platform_id": dr.id, "mappings": mappings, "purpose": "failover"});
    let result: BulkMappingResult = api.ok("POST", "/api/v1/networks/bulk-mapping", Some(bulk.clone()), StatusCode::OK).await;
    assert_eq!((result.created, result.replaced, result.mappings.len()), (3, 0, 3));
    assert!(result.mappings.iter().all(|m| m.flow_id.is_none() && m.created_by.as_deref() == Some("admin") && m.purpose == MappingPurpose::Failover));
    let report = api.validate(&vm_ids, &dr.id, None, "failover").await;
    assert!(report.ok, "{:?}", blockers(&report));
    assert_eq!((report.blockers, report.vms.len(), report.target_platform.name.as_str()), (0, 6, "kvm-dr-01"));
    for vm in &report.vms {
        assert!(vm.ok && vm.source_platform.id == prod.id, "{vm:?}");
        for nic in &vm.nics {
            assert_eq!((nic.target_network.as_deref(), nic.scope), (Some(nic.source_network.as_str()), Some(MappingScope::Default)), "{nic:?}");
            // The subnet changes at the DR site: said, not blocking.
            assert!(nic.issues.iter().any(|i| i.severity == NoteSeverity::Info && i.message.contains("the subnet changes")), "{nic:?}");
        }
    }
    // The same bulk again replaces the three mappings, nothing more.
    let again: BulkMappingResult = api.ok("POST", "/api/v1/networks/bulk-mapping", Some(bulk), StatusCode::OK).await;
    assert_eq!((again.created, again.replaced), (0, 3));
    let listed: Vec<NetworkMapping> = api.ok("GET", &format!("/api/v1/network-mappings?source_platform_id={}", prod.id), None, StatusCode::OK).await;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|m| again.mappings.iter().any(|a| a.id == m.id)), "the first bulk's rows were replaced");

    // The library call the failover code uses.
    let resolved = network_mapping::resolve(&api.f.state.db, &vm_id("web-01"), &dr.id, None, MappingPurpose::Failover).await.unwrap();
    let got: Vec<(u32, &str, &str)> = resolved.iter().map(|n| (n.index, n.source_network.as_str(), n.target_network.as_str())).collect();
    assert_eq!(got, [(0, "dmz", "dmz"), (1, "lan", "lan")]);
    assert_eq!(resolved[1].mac, lab_catalog::mac("web-01", 1));

    // A test failover has no mapping yet: blocked. A test mapping to a production network is refused.
    let test_report = api.validate(&[vm_id("web-01")], &dr.id, None, "test").await;
    assert!(!test_report.ok && blockers(&test_report).iter().all(|m| m.contains("no test failover mapping")), "{test_report:?}");
    let single = |source: &str, target: &str, purpose: &str| {
        json!({"source_platform_id": prod.id, "source_network": source, "target_platform_id": dr.id, "target_network": target, "purpose": purpose})
    };
    let e = api.refused("POST", "/api/v1/network-mappings", Some(single("lan", "lan", "test")), StatusCode::UNPROCESSABLE_ENTITY, "network_not_allowed").await;
    assert!(e.message.contains("'lan' is not an isolated network") && e.details[0].field == "target_network", "{e:?}");
    // ... and a failover mapping to the isolated network too.
    let e = api.refused("POST", "/api/v1/network-mappings", Some(single("dmz", "isolated", "failover")), StatusCode::UNPROCESSABLE_ENTITY, "network_not_allowed").await;
    assert!(e.message.contains("isolated network (no uplink)"), "{e:?}");
    // Test mappings to the isolated network, one at a time; the second of the same key is a 409.
    let mut test_ids = Vec::new();
    for net in ["lan", "dmz", "storage"] {
        let m: NetworkMapping = api.ok("POST", "/api/v1/network-mappings", Some(single(net, "isolated", "test")), StatusCode::CREATED).await;
        assert_eq!((m.purpose, m.target_network.as_str()), (MappingPurpose::Test, "isolated"));
        test_ids.push(m.id);
    }
    let e = api.refused("POST", "/api/v1/network-mappings", Some(single("lan", "isolated", "test")), StatusCode::CONFLICT, "mapping_exists").await;
    assert!(e.message.contains("'lan' of 'kvm-prod-01' is already mapped to 'isolated'"), "{e:?}");
    // A single failover mapping of an already mapped network: 409 as well.
    api.refused("POST", "/api/v1/network-mappings", Some(single("lan", "storage", "failover")), StatusCode::CONFLICT, "mapping_exists").await;
    let test_report = api.validate(&vm_ids, &dr.id, None, "test").await;
    assert!(test_report.ok, "{:?}", blockers(&test_report));
    assert!(test_report.vms.iter().flat_map(|v| &v.nics).all(|n| n.target_network.as_deref() == Some("isolated")));

    // Networks that do not exist on their platform: 422 naming the platform's networks.
    let e = api.refused("POST", "/api/v1/network-mappings", Some(single("wan", "lan", "failover")), StatusCode::UNPROCESSABLE_ENTITY, "network_not_found").await;
    assert!(e.message.contains("'wan' is not a network of platform 'kvm-prod-01' (its networks: dmz, lan, storage)"), "{e:?}");
    let e = api.refused("POST", "/api/v1/network-mappings", Some(single("lan", "dr-lan", "test")), StatusCode::UNPROCESSABLE_ENTITY, "network_not_found").await;
    assert_eq!(e.details[0].field, "target_network");
    api.refused("POST", "/api/v1/network-mappings", Some(single("", "lan", "failover")), StatusCode::BAD_REQUEST, "invalid_field").await;

    // Unknown ids: 404.
    let mut unknown = single("lan", "lan", "failover");
    unknown["source_platform_id"] = json!("no-such-platform");
    api.refused("POST", "/api/v1/network-mappings", Some(unknown), StatusCode::NOT_FOUND, "platform_not_found").await;
    let mut unknown = single("lan", "lan", "failover");
    unknown["flow_id"] = json!("no-such-flow");
    api.refused("POST", "/api/v1/network-mappings", Some(unknown), StatusCode::NOT_FOUND, "flow_not_found").await;
    api.refused("DELETE", "/api/v1/network-mappings/no-such-mapping", None, StatusCode::NOT_FOUND, "mapping_not_found").await;
    let body = json!({"vm_ids": [vm_id("web-01"), "no-such-vm"], "target_platform_id": dr.id});
    let e = api.refused("POST", "/api/v1/networks/validate", Some(body), StatusCode::NOT_FOUND, "vm_not_found").await;
    assert!(e.message.contains("'no-such-vm'") && !e.message.contains(&vm_id("web-01")), "{e:?}");
    let body = json!({"vm_ids": [vm_id("web-01")], "target_platform_id": "no-such-platform"});
    api.refused("POST", "/api/v1/networks/validate", Some(body), StatusCode::NOT_FOUND, "platform_not_found").await;
    let path = format!("/api/v1/networks/recommendations?source_platform_id=no-such-platform&target_platform_id={}", dr.id);
    api.refused("GET", &path, None, StatusCode::NOT_FOUND, "platform_not_found").await;
    let bulk_unknown = json!({"source_platform_id": prod.id, "target_platform_id": "nope", "mappings": [{"source_network": "lan", "target_network": "lan"}]});
    api.refused("POST", "/api/v1/networks/bulk-mapping", Some(bulk_unknown), StatusCode::NOT_FOUND, "platform_not_found").await;

    // An unmapped NIC is named: dmz's failover mapping deleted.
    let dmz = listed.iter().find(|m| m.source_network == "dmz").unwrap();
    assert_eq!(api.call("DELETE", &format!("/api/v1/network-mappings/{}", dmz.id), None).await.status, StatusCode::NO_CONTENT);
    api.refused("DELETE", &format!("/api/v1/network-mappings/{}", dmz.id), None, StatusCode::NOT_FOUND, "mapping_not_found").await;
    let report = api.validate(&vm_ids, &dr.id, None, "failover").await;
    assert!(!report.ok);
    let on_dmz: usize = lab_catalog::hosts()[0].vms.iter().map(|v| v.nics.iter().filter(|(n, _, _)| *n == "dmz").count()).sum();
    assert_eq!(report.blockers as usize, on_dmz, "{:?}", blockers(&report));
    let web = report.vms.iter().find(|v| v.vm_name == "web-01").unwrap();
    assert!(!web.ok);
    assert_eq!((web.nics[0].source_network.as_str(), web.nics[0].target_network.as_deref()), ("dmz", None));
    assert!(web.nics[0].issues.iter().any(|i| i.severity == NoteSeverity::Blocker
        && i.message.contains(&format!("NIC 1 ({}) of 'web-01' is on 'dmz'", lab_catalog::mac("web-01", 0)))), "{web:?}");
    assert_eq!(web.nics[1].target_network.as_deref(), Some("lan"), "the lan NIC stays mapped");
    let db_vm = report.vms.iter().find(|v| v.vm_name == "db-01").unwrap();
    assert!(db_vm.ok, "db-01 has no NIC on dmz: {db_vm:?}");
    match network_mapping::resolve(&api.f.state.db, &vm_id("web-01"), &dr.id, None, MappingPurpose::Failover).await {
        Err(MappingError::Unusable { vm, problems, .. }) => {
            assert_eq!(vm, "web-01");
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains("is on 'dmz'"), "{problems:?}");
        }
        other => panic!("web-01 resolved without a dmz mapping: {other:?}"),
    }
    assert!(matches!(
        network_mapping::resolve(&api.f.state.db, "no-such-vm", &dr.id, None, MappingPurpose::Failover).await,
        Err(MappingError::VmNotFound(_))
    ));

    // Bulk is all or nothing: one bad pair and none is stored.
    let bad = json!({"source_platform_id": prod.id, "target_platform_id": dr.id, "purpose": "failover", "mappings": [
        {"source_network": "dmz", "target_network": "dmz"}, {"source_network": "lan", "target_network": "isolated"}, {"source_network": "storage", "target_network": "nope"}]});
    let e = api.refused("POST", "/api/v1/networks/bulk-mapping", Some(bad), StatusCode::UNPROCESSABLE_ENTITY, "invalid_mappings").await;
    let fields: Vec<&str> = e.details.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["mappings[1].target_network", "mappings[2].target_network"], "{e:?}");
    assert!(e.message.starts_with("2 of 3 mappings cannot be stored, none was"), "{e:?}");
    let after: Vec<NetworkMapping> =
        api.ok("GET", &format!("/api/v1/network-mappings?source_platform_id={}&purpose=failover", prod.id), None, StatusCode::OK).await;
    let map: BTreeMap<&str, &str> = after.iter().map(|m| (m.source_network.as_str(), m.target_network.as_str())).collect();
    assert_eq!(map, BTreeMap::from([("lan", "lan"), ("storage", "storage")]), "a refused bulk wrote something");
    let twice = json!({"source_platform_id": prod.id, "target_platform_id": dr.id, "mappings": [
        {"source_network": "dmz", "target_network": "dmz"}, {"source_network": "dmz", "target_network": "lan"}]});
    api.refused("POST", "/api/v1/networks/bulk-mapping", Some(twice), StatusCode::BAD_REQUEST, "invalid_field").await;
    let fix = json!({"source_platform_id": prod.id, "target_platform_id": dr.id, "mappings": [{"source_network": "dmz", "target_network": "dmz"}]});
    let fixed: BulkMappingResult = api.ok("POST", "/api/v1/networks/bulk-mapping", Some(fix), StatusCode::OK).await;
    assert_eq!((fixed.created, fixed.replaced), (1, 0));
    assert!(api.validate(&vm_ids, &dr.id, None, "failover").await.ok);

    // A flow's own mapping overrides the default, for that flow only; it goes with the flow.
    let flow: Flow = api
        .ok(
            "POST",
            "/api/v1/flows",
            Some(json!({"name": "web", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm_id("web-01")]}, "repository_id": repo.id})),
            StatusCode::CREATED,
        )
        .await;
    let flow_bulk = json!({"source_platform_id": prod.id, "target_platform_id": dr.id, "flow_id": flow.id,
        "mappings": [{"source_network": "lan", "target_network": "storage"}]});
    let own: BulkMappingResult = api.ok("POST", "/api/v1/networks/bulk-mapping", Some(flow_bulk), StatusCode::OK).await;
    assert_eq!((own.created, own.mappings[0].flow_id.as_deref()), (1, Some(flow.id.as_str())));
    let with_flow = api.validate(&[vm_id("web-01")], &dr.id, Some(&flow.id), "failover").await;
    let nics: Vec<(&str, Option<&str>, Option<MappingScope>)> =
        with_flow.vms[0].nics.iter().map(|n| (n.source_network.as_str(), n.target_network.as_deref(), n.scope)).collect();
    assert_eq!(nics, [("dmz", Some("dmz"), Some(MappingScope::Default)), ("lan", Some("storage"), Some(MappingScope::Flow))]);
    let resolved = network_mapping::resolve(&api.f.state.db, &vm_id("web-01"), &dr.id, Some(&flow.id), MappingPurpose::Failover).await.unwrap();
    assert_eq!(resolved[1].target_network, "storage");
    let without = api.validate(&[vm_id("web-01")], &dr.id, None, "failover").await;
    assert_eq!(without.vms[0].nics[1].target_network.as_deref(), Some("lan"));
    let of_flow: Vec<NetworkMapping> = api.ok("GET", &format!("/api/v1/network-mappings?flow_id={}", flow.id), None, StatusCode::OK).await;
    assert_eq!(of_flow.len(), 1);

    // The topology: every platform's networks with managed VMs per network, every mapping as an edge.
    let topo: Topology = api.ok("GET", "/api/v1/networks/topology", None, StatusCode::OK).await;
    let names: Vec<&str> = topo.platforms.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["kvm-dr-01", "kvm-prod-01"]);
    let prod_topo = topo.platforms.iter().find(|p| p.id == prod.id).unwrap();
    for n in &prod_topo.networks {
        let expected = lab_catalog::hosts()[0].vms.iter().filter(|v| v.nics.iter().any(|(net, _, _)| *net == n.name)).count();
        assert_eq!(n.vm_count as usize, expected, "{}", n.name);
        assert!(!n.isolated);
    }
    let dr_topo = topo.platforms.iter().find(|p| p.id == dr.id).unwrap();
    assert!(dr_topo.networks.iter().all(|n| n.vm_count == 0));
    assert!(dr_topo.networks.iter().any(|n| n.name == "isolated" && n.isolated && n.bridge.is_some()));
    let all: Vec<NetworkMapping> = api.ok("GET", "/api/v1/network-mappings", None, StatusCode::OK).await;
    assert_eq!(topo.edges.len(), all.len());
    assert_eq!(all.len(), 3 + 3 + 1, "failover defaults, test defaults, the flow's own");

    assert_eq!(api.call("DELETE", &format!("/api/v1/flows/{}", flow.id), None).await.status, StatusCode::NO_CONTENT);
    let of_flow: Vec<NetworkMapping> = api.ok("GET", &format!("/api/v1/network-mappings?flow_id={}", flow.id), None, StatusCode::OK).await;
    assert!(of_flow.is_empty(), "a deleted flow kept its mappings");

    // Viewers read; changes and validation need an operator.
    let (_, viewer) = api.f.user_with_role("watcher", Role::Viewer).await;
    assert_eq!(api.f.call("GET", "/api/v1/networks/topology", Some(&viewer), None).await.status, StatusCode::OK);
    assert_eq!(api.f.call("GET", "/api/v1/network-mappings", Some(&viewer), None).await.status, StatusCode::OK);
    let r = api.f.call("POST", "/api/v1/network-mappings", Some(&viewer), Some(single("lan", "lan", "failover"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = api.f.call("DELETE", &format!("/api/v1/network-mappings/{}", test_ids[0]), Some(&viewer), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let (_, operator) = api.f.user_with_role("ops", Role::Operator).await;
    let r = api.f.call("DELETE", &format!("/api/v1/network-mappings/{}", test_ids[0]), Some(&operator), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Every change is in the audit log with what it did.
    let audit: AuditPage = api.ok("GET", "/api/v1/audit?limit=200", None, StatusCode::OK).await;
    let actions: Vec<(&str, &str, Option<&str>)> =
        audit.entries.iter().map(|e| (e.action.as_str(), e.target.as_str(), e.actor.as_deref())).collect();
    assert!(actions.iter().any(|(a, t, _)| *a == "network_mapping.bulk" && t.contains("3 mappings kvm-prod-01 -> kvm-dr-01 (failover, default): 3 new")), "{actions:?}");
    assert!(actions.iter().any(|(a, t, _)| *a == "network_mapping.create" && *t == "lan@kvm-prod-01 -> isolated@kvm-dr-01 (test, default)"), "{actions:?}");
    assert!(actions.iter().any(|(a, t, who)| *a == "network_mapping.delete" && t.starts_with("lan@kvm-prod-01 -> isolated@kvm-dr-01") && *who == Some("ops")), "{actions:?}");
    assert!(actions.iter().any(|(a, t, _)| *a == "network.validate" && t.contains("6 VMs to kvm-dr-01 (failover, default): ok")), "{actions:?}");

    // The routes are in the OpenAPI document.
    let doc: Value = api.ok("GET", "/api/v1/openapi.json", None, StatusCode::OK).await;
    for path in ["/network-mappings", "/network-mappings/{id}", "/networks/bulk-mapping", "/networks/recommendations", "/networks/validate", "/networks/topology"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
}
