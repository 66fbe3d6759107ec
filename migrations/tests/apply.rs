//! Applies every migration to a fresh SQLite file and to a real PostgreSQL
//! server started for the test, twice (the second run must be a no-op), and
//! checks the resulting schema.

mod support;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

async fn apply_and_check(db: &DatabaseConnection) {
    migrations::Migrator::up(db, None).await.expect("migrations apply");
    // Applying again is a no-op, not an error.
    migrations::Migrator::up(db, None).await.expect("migrations re-apply");
    let pending = migrations::Migrator::get_pending_migrations(db).await.expect("list pending");
    assert!(pending.is_empty(), "{} migrations still pending", pending.len());
    let applied = migrations::Migrator::get_applied_migrations(db).await.expect("list applied");
    assert_eq!(applied.len(), migrations::Migrator::migrations().len());

    // The settings table takes and returns a row.
    let backend = db.get_database_backend();
    let insert = Query::insert()
        .into_table(Alias::new("settings"))
        .columns([Alias::new("key"), Alias::new("value"), Alias::new("updated_at")])
        .values_panic(["probe".into(), "42".into(), Expr::current_timestamp().into()])
        .to_owned();
    db.execute(backend.build(&insert)).await.expect("insert into settings");
    let row = db
        .query_one(Statement::from_string(backend, "SELECT value FROM settings WHERE key = 'probe'"))
        .await
        .expect("select from settings")
        .expect("the row just inserted");
    let value: String = row.try_get("", "value").expect("value column");
    assert_eq!(value, "42");
    // The primary key holds.
    assert!(db.execute(backend.build(&insert)).await.is_err(), "duplicate key accepted");

    check_protection_schema(db).await;
    check_network_mapping_schema(db).await;
    check_maintenance_schema(db).await;
}

fn insert(table: &str, values: &[(&str, SimpleExpr)]) -> InsertStatement {
    Query::insert()
        .into_table(Alias::new(table))
        .columns(values.iter().map(|(c, _)| Alias::new(*c)))
        .values_panic(values.iter().map(|(_, v)| v.clone()))
        .to_owned()
}

fn now() -> SimpleExpr {
    Expr::current_timestamp().into()
}

fn s(v: &str) -> SimpleExpr {
    v.into()
}

async fn delete_row(db: &DatabaseConnection, table: &str, id: &str) {
    let stmt = Query::delete().from_table(Alias::new(table)).and_where(Expr::col(Alias::new("id")).eq(id)).to_owned();
    db.execute(db.get_database_backend().build(&stmt)).await.expect("delete row");
}

async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    let backend = db.get_database_backend();
    let q = Query::select().expr_as(Expr::cust("COUNT(*)"), Alias::new("n")).from(Alias::new(table)).to_owned();
    let row = db.query_one(backend.build(&q)).await.expect("count").expect("a row");
    row.try_get("", "n").expect("n")
}

/// The inventory and protection tables take a managed VM with its disk, a
/// flow, a job with a sample and a log line, and a restore point; unique
/// keys and foreign keys hold on both engines.
async fn check_protection_schema(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let exec = |stmt: InsertStatement| {
        let sql = backend.build(&stmt);
        async move { db.execute(sql).await }
    };
    exec(insert(
        "platforms",
        &[("id", s("p1")), ("name", s("kvm-01")), ("kind", s("kvm")), ("address", s("/hosts/kvm-01")), ("status", s("online")),
          ("created_at", now()), ("updated_at", now())],
    ))
    .await
    .expect("insert platform");
    let dup = insert(
        "platforms",
        &[("id", s("p2")), ("name", s("other")), ("kind", s("kvm")), ("address", s("/hosts/kvm-01")), ("status", s("online")),
          ("created_at", now()), ("updated_at", now())],
    );
    assert!(exec(dup).await.is_err(), "the same host directory registered twice");
    exec(insert("protection_groups", &[("id", s("g1")), ("name", s("prod")), ("created_at", now()), ("updated_at", now())]))
        .await
        .expect("insert group");
    let vm = |id: &str, vm_id: &str| {
        insert(
            "vm_contexts",
            &[("id", s(id)), ("platform_id", s("p1")), ("platform_vm_id", s(vm_id)), ("name", s("web-01")), ("vcpus", 2.into()),
              ("memory_mib", 2048.into()), ("power", s("running")), ("os", s("linux")), ("firmware", s("bios")),
              ("capacity_bytes", 10_737_418_240_i64.into()), ("group_id", s("g1")), ("status", s("active")),
              ("created_at", now()), ("last_seen_at", now())],
        )
    };
    exec(vm("v1", "uuid-1")).await.expect("insert vm context");
    assert!(exec(vm("v2", "uuid-1")).await.is_err(), "one platform VM managed twice");
    exec(insert(
        "vm_disks",
        &[("vm_context_id", s("v1")), ("name", s("disk0")), ("capacity_bytes", 1.into()), ("allocated_bytes", 1.into()),
          ("format", s("qcow2")), ("cbt", true.into())],
    ))
    .await
    .expect("insert disk");
    exec(insert("repositories", &[("id", s("r1")), ("name", s("local")), ("kind", s("local")), ("path", s("/r")), ("created_at", now())]))
        .await
        .expect("insert repository");
    let maintenance = Query::update()
        .table(Alias::new("repositories"))
        .values([(Alias::new("maintenance_reason"), s("disk swap")), (Alias::new("maintenance_since"), now()), (Alias::new("maintenance_by"), s("admin"))])
        .and_where(Expr::col(Alias::new("id")).eq("r1"))
        .to_owned();
    db.execute(backend.build(&maintenance)).await.expect("repository enters maintenance");
    exec(insert(
        "flows",
        &[("id", s("f1")), ("name", s("nightly")), ("kind", s("backup")), ("group_id", s("g1")), ("repository_id", s("r1")),
          ("schedule", s("0 2 * * *")), ("retention", s("{}")), ("state", s("idle")), ("created_at", now()), ("updated_at", now())],
    ))
    .await
    .expect("insert flow");
    exec(insert("flow_vms", &[("flow_id", s("f1")), ("vm_context_id", s("v1"))])).await.expect("insert flow vm");
    exec(insert(
        "jobs",
        &[("id", s("j1")), ("flow_id", s("f1")), ("vm_context_id", s("v1")), ("repository_id", s("r1")), ("kind", s("backup")),
          ("backup_type", s("full")), ("status", s("completed")), ("created_at", now()), ("updated_at", now())],
    ))
    .await
    .expect("insert job");
    // A restore job names its restore point, target platform and options.
    exec(insert(
        "jobs",
        &[("id", s("j2")), ("vm_context_id", s("v1")), ("repository_id", s("r1")), ("kind", s("restore")), ("status", s("queued")),
          ("backup_id", s("b1")), ("target_platform_id", s("p1")), ("options", s(r#"{"name":"web-01-restored","power_on":true}"#)),
          ("created_at", now()), ("updated_at", now())],
    ))
    .await
    .expect("insert restore job");
    let progress = Query::update()
        .table(Alias::new("jobs"))
        .values([(Alias::new("status"), s("failed")), (Alias::new("options"), s(r#"{"name":"other"}"#)), (Alias::new("target_platform_id"), SimpleExpr::from(Option::<String>::None))])
        .and_where(Expr::col(Alias::new("id")).eq("j2"))
        .to_owned();
    db.execute(backend.build(&progress)).await.expect("update restore job");
    let row = db
        .query_one(Statement::from_string(backend, "SELECT options, backup_id, target_platform_id FROM jobs WHERE id = 'j2'"))
        .await
        .expect("select restore job")
        .expect("the restore job");
    let options: String = row.try_get("", "options").expect("options");
    let backup_id: Option<String> = row.try_get("", "backup_id").expect("backup_id");
    let target: Option<String> = row.try_get("", "target_platform_id").expect("target_platform_id");
    assert_eq!((options.as_str(), backup_id.as_deref(), target), (r#"{"name":"other"}"#, Some("b1"), None));
    delete_row(db, "jobs", "j2").await;
    exec(insert(
        "job_samples",
        &[("job_id", s("j1")), ("at", now()), ("bytes_read", 1.into()), ("bytes_written", 1.into()), ("throughput_bps", 1.into())],
    ))
    .await
    .expect("insert sample");
    exec(insert("job_logs", &[("job_id", s("j1")), ("at", now()), ("level", s("info")), ("message", s("started"))]))
        .await
        .expect("insert log");
    let backup = |id: &str| {
        insert(
            "backups",
            &[("id", s(id)), ("vm_context_id", s("v1")), ("job_id", s("j1")), ("repository_id", s("r1")), ("snapshot_name", s("web-01")),
              ("snapshot_id", s("20261122T020000Z-ab")), ("backup_type", s("full")), ("status", s("available")),
              ("logical_bytes", 5.into()), ("created_at", now())],
        )
    };
    exec(backup("b1")).await.expect("insert backup");
    assert!(exec(backup("b2")).await.is_err(), "one snapshot recorded twice");

    // A restore point keeps its VM's record: deleting the platform is refused.
    let delete = |table: &str, id: &str| {
        let stmt = Query::delete().from_table(Alias::new(table)).and_where(Expr::col(Alias::new("id")).eq(id)).to_owned();
        let sql = backend.build(&stmt);
        async move { db.execute(sql).await }
    };
    assert!(delete("platforms", "p1").await.is_err(), "a VM with restore points lost its record");
    // Deleting a job keeps the restore point; deleting the restore point then the platform cascades.
    delete("jobs", "j1").await.expect("delete job");
    assert_eq!((count(db, "backups").await, count(db, "job_samples").await, count(db, "job_logs").await), (1, 0, 0));
    delete("backups", "b1").await.expect("delete backup");
    // A group with a flow cannot go.
    assert!(delete("protection_groups", "g1").await.is_err(), "a flow lost its group");
    delete("platforms", "p1").await.expect("delete platform");
    for table in ["vm_contexts", "vm_disks", "flow_vms"] {
        assert_eq!(count(db, table).await, 0, "{table} kept rows of a deleted platform");
    }
}

/// Networks take a VLAN and the isolated flag (false unless set); one
/// network mapping per key, for the default of a platform pair (flow_id
/// null) as for a flow; a platform's mappings go with it.
async fn check_network_mapping_schema(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let exec = |stmt: InsertStatement| {
        let sql = backend.build(&stmt);
        async move { db.execute(sql).await }
    };
    for (id, name) in [("np1", "kvm-prod"), ("np2", "kvm-dr")] {
        exec(insert(
            "platforms",
            &[("id", s(id)), ("name", s(name)), ("kind", s("kvm")), ("address", s(&format!("/hosts/{name}"))), ("status", s("online")),
              ("created_at", now()), ("updated_at", now())],
        ))
        .await
        .expect("insert platform");
    }
    exec(insert("networks", &[("platform_id", s("np1")), ("name", s("lan")), ("vlan", 10.into())])).await.expect("network with a VLAN");
    exec(insert("networks", &[("platform_id", s("np2")), ("name", s("isolated")), ("isolated", true.into())])).await.expect("isolated network");
    let row = db
        .query_one(Statement::from_string(backend, "SELECT vlan, isolated FROM networks WHERE platform_id = 'np1' AND name = 'lan'"))
        .await
        .expect("select network")
        .expect("the network");
    let (vlan, isolated): (Option<i32>, bool) = (row.try_get("", "vlan").expect("vlan"), row.try_get("", "isolated").expect("isolated"));
    assert_eq!((vlan, isolated), (Some(10), false), "isolated defaults to false");

    let mapping = |id: &str, target: &str, purpose: &str, flow: Option<&str>| {
        insert(
            "network_mappings",
            &[("id", s(id)), ("source_platform_id", s("np1")), ("source_network", s("lan")), ("target_platform_id", s("np2")),
              ("target_network", s(target)), ("purpose", s(purpose)), ("flow_id", SimpleExpr::from(flow.map(str::to_owned))),
              ("created_at", now()), ("created_by", s("admin"))],
        )
    };
    exec(mapping("m1", "lan", "failover", None)).await.expect("default mapping");
    assert!(exec(mapping("m2", "dmz", "failover", None)).await.is_err(), "two defaults for one source network");
    exec(mapping("m3", "isolated", "test", None)).await.expect("a test mapping beside the failover one");
    exec(mapping("m4", "dmz", "failover", Some("f9"))).await.expect("a flow's own mapping beside the default");
    assert!(exec(mapping("m5", "lan", "failover", Some("f9"))).await.is_err(), "two mappings for one flow and source network");
    exec(mapping("m6", "lan", "failover", Some("f8"))).await.expect("another flow's mapping");
    assert_eq!(count(db, "network_mappings").await, 4);
    delete_row(db, "platforms", "np2").await;
    assert_eq!(count(db, "network_mappings").await, 0, "mappings of a deleted platform stayed");
    delete_row(db, "platforms", "np1").await;
}

/// Repository jobs (verify, GC, prune) have no VM; a restore point carries
/// its verify state; a repository its schedules and last results. Foreign
/// keys of jobs still hold after the column lost its NOT NULL.
async fn check_maintenance_schema(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let exec = |stmt: InsertStatement| {
        let sql = backend.build(&stmt);
        async move { db.execute(sql).await }
    };
    exec(insert("repositories", &[("id", s("mr1")), ("name", s("maint")), ("kind", s("local")), ("path", s("/m")), ("created_at", now()),
        ("verify_schedule", s("0 3 * * 0")), ("gc_schedule", s("")), ("last_gc_reclaimed_bytes", 5_000_000_000_i64.into())]))
        .await
        .expect("insert repository with schedules");
    exec(insert("jobs", &[("id", s("mj1")), ("repository_id", s("mr1")), ("kind", s("verify")), ("status", s("queued")),
        ("created_at", now()), ("updated_at", now())]))
        .await
        .expect("a job without a VM");
    exec(insert("job_logs", &[("job_id", s("mj1")), ("at", now()), ("level", s("info")), ("message", s("checked"))]))
        .await
        .expect("a log line of a repository job");
    let orphan = insert("jobs", &[("id", s("mj2")), ("vm_context_id", s("no-such-vm")), ("repository_id", s("mr1")), ("kind", s("verify")),
        ("status", s("queued")), ("created_at", now()), ("updated_at", now())]);
    assert!(exec(orphan).await.is_err(), "a job naming an unknown VM was accepted");
    let row = db
        .query_one(Statement::from_string(backend, "SELECT vm_context_id FROM jobs WHERE id = 'mj1'"))
        .await
        .expect("select job")
        .expect("the job");
    let vm: Option<String> = row.try_get("", "vm_context_id").expect("vm_context_id");
    assert_eq!(vm, None);
    let row = db
        .query_one(Statement::from_string(backend, "SELECT verify_schedule, gc_schedule, last_gc_reclaimed_bytes FROM repositories WHERE id = 'mr1'"))
        .await
        .expect("select repository")
        .expect("the repository");
    let v: Option<String> = row.try_get("", "verify_schedule").expect("verify_schedule");
    let g: Option<String> = row.try_get("", "gc_schedule").expect("gc_schedule");
    let b: Option<i64> = row.try_get("", "last_gc_reclaimed_bytes").expect("last_gc_reclaimed_bytes");
    assert_eq!((v.as_deref(), g.as_deref(), b), (Some("0 3 * * 0"), Some(""), Some(5_000_000_000)));
    let verified = Query::select()
        .columns([Alias::new("verified_at"), Alias::new("verify_reason")])
        .from(Alias::new("backups"))
        .to_owned();
    db.query_all(backend.build(&verified)).await.expect("backups carry their verify state");
    let since = Query::select().columns([Alias::new("power"), Alias::new("power_since")]).from(Alias::new("vm_contexts")).to_owned();
    db.query_all(backend.build(&since)).await.expect("managed VMs carry when their power state began");
    delete_row(db, "repositories", "mr1").await;
    let row = db
        .query_one(Statement::from_string(backend, "SELECT repository_id FROM jobs WHERE id = 'mj1'"))
        .await
        .expect("select job")
        .expect("the job stays");
    let r: Option<String> = row.try_get("", "repository_id").expect("repository_id");
    assert_eq!(r, None, "the repository foreign key (set null) no longer holds");
    delete_row(db, "jobs", "mj1").await;
    assert_eq!(count(db, "job_logs").await, 0, "the job's log cascade no longer holds");
}

#[tokio::test]
async fn migrations_apply_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("catalog.sqlite").display());
    let db = Database::connect(&url).await.expect("open sqlite");
    apply_and_check(&db).await;
}

#[tokio::test]
async fn migrations_apply_on_postgres() {
    let cluster = support::PgCluster::start().expect("start PostgreSQL for the test");
    let db = Database::connect(cluster.url()).await.expect("connect to PostgreSQL");
    apply_and_check(&db).await;
}
