//! Migrations: the SQLite and PostgreSQL schemas match as the databases report them (tables, columns,
//! type families, nullability, indexes), and each migration applies over sample data of the previous one.

use std::collections::BTreeSet;
use std::path::Path;

use tao::store::{self, Pool};

use crate::both_backends;
use crate::support::TestDb;

/// A column type reduced to what both dialects mean by it.
fn family(declared: &str) -> String {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "smallint" | "int" | "int8" | "int4" => "int".into(),
        "text" | "character varying" | "varchar" => "text".into(),
        "boolean" | "bool" => "bool".into(),
        "real" | "double precision" | "double" => "float".into(),
        "blob" | "bytea" => "bytes".into(),
        other => panic!("column type {other:?} has no family here: map it in tests/it/migration.rs"),
    }
}

async fn describe(pool: &Pool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match pool {
        Pool::Sqlite(p) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(p)
            .await
            .unwrap();
            for t in tables {
                let cols: Vec<(String, String, i64, i64)> =
                    sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
                        .bind(&t)
                        .fetch_all(p)
                        .await
                        .unwrap();
                for (name, ty, notnull, pk) in cols {
                    let null = if notnull == 1 || pk > 0 { "not null" } else { "null" };
                    out.insert(format!("column {t}.{name} {} {null}", family(&ty)));
                }
                let indexes: Vec<(String, i64, String)> =
                    sqlx::query_as("SELECT name, \"unique\", origin FROM pragma_index_list($1)")
                        .bind(&t)
                        .fetch_all(p)
                        .await
                        .unwrap();
                for (name, unique, origin) in indexes.into_iter().filter(|i| i.2 != "pk") {
                    let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                        .bind(&name)
                        .fetch_all(p)
                        .await
                        .unwrap();
                    let kind = if unique == 1 { "unique index" } else { "index" };
                    let name = if origin == "u" { "(constraint)".to_string() } else { name };
                    out.insert(format!("{kind} {name} on {t}({})", cols.join(",")));
                }
            }
        }
        Pool::Postgres(p) => {
            let cols: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
                 FROM information_schema.columns WHERE table_schema = 'public'",
            )
            .fetch_all(p)
            .await
            .unwrap();
            for (t, name, ty, nullable) in cols {
                let null = if nullable == "NO" { "not null" } else { "null" };
                out.insert(format!("column {t}.{name} {} {null}", family(&ty)));
            }
            let indexes: Vec<(String, String, bool, String)> = sqlx::query_as(
                "SELECT i.relname::text, t.relname::text, ix.indisunique, \
                        string_agg(a.attname::text, ',' ORDER BY k.n) \
                 FROM pg_index ix \
                 JOIN pg_class i ON i.oid = ix.indexrelid \
                 JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace ns ON ns.oid = t.relnamespace \
                 CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                 WHERE ns.nspname = 'public' AND NOT ix.indisprimary \
                 GROUP BY i.relname, t.relname, ix.indisunique",
            )
            .fetch_all(p)
            .await
            .unwrap();
            for (name, t, unique, cols) in indexes {
                let kind = if unique { "unique index" } else { "index" };
                out.insert(format!("{kind} {name} on {t}({cols})"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_match() {
    crate::support::limit(sqlite_and_postgres_schemas_match_body()).await
}

async fn sqlite_and_postgres_schemas_match_body() {
    let (lite, pg) = (TestDb::sqlite(), TestDb::postgres().await);
    let (lite_pool, pg_pool) = (lite.pool().await, pg.pool().await);
    let (a, b) = (describe(&lite_pool).await, describe(&pg_pool).await);
    let only_sqlite: Vec<_> = a.difference(&b).collect();
    let only_pg: Vec<_> = b.difference(&a).collect();
    assert!(
        only_sqlite.is_empty() && only_pg.is_empty(),
        "schemas differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_pg:#?}"
    );
    assert!(a.iter().any(|l| l.starts_with("column product_version.")), "the description saw the schema: {a:#?}");
    pg_pool.close().await;
}

fn sample(version: i64) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/migration-samples/{version:04}.sql"));
    std::fs::read_to_string(path).ok()
}

async fn upgrades_over_sample_data(db: TestDb) {
    let pool = db.connect().await;
    let mut samples = 0;
    for m in store::migrate::MIGRATIONS {
        assert_eq!(store::migrate::run_to(&pool, m.version).await.unwrap(), vec![m.version], "{}", m.name);
        if let Some(sql) = sample(m.version) {
            tao::with_pool!(&pool, p => sqlx::raw_sql(&sql).execute(p).await.map(|_| ()))
                .unwrap_or_else(|e| panic!("sample data for {} does not load: {e}", m.name));
            samples += 1;
        }
    }
    assert!(samples > 0, "at least one migration ships sample data");
    // The sample survives every later migration and reads back through the store.
    let pv = store::release::get(&pool, "monitor", "1.0.0").await.unwrap().expect("sample release");
    assert_eq!(pv.components.len(), 2);
    assert_eq!(store::token::list(&pool).await.unwrap()[0].name, "sample");
    assert_eq!(store::catalog::latest(&pool).await.unwrap().unwrap().id, 100);
    let events = store::event::page(&pool, &Default::default(), 0, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.state.as_str()).collect::<Vec<_>>(), ["processed", "pending"]);
    let item = store::workitem::item(&pool, "tapd", "1151234567001000101").await.unwrap().expect("sample work item");
    assert_eq!(item.version.as_deref(), Some("1.1.0"));
    assert_eq!(store::workitem::history(&pool, "tapd", &item.id).await.unwrap().len(), 2);
    assert_eq!(store::change::commits_of(&pool, "api", "1.1.0").await.unwrap().len(), 2);
    assert!(store::change::recorded(&pool, "api", "1.0.0").await.unwrap());
    // The sample bug has no work item: its fixed-in counts, its found-in (open or not?) does not.
    let bugs = store::workitem::bugs_per_version(&pool).await.unwrap();
    assert_eq!(bugs, [("monitor".to_string(), "1.1.0".to_string(), 0, 1, 0)]);
    // Migration 0010 moved the payloads to their own table.
    let payloads: Vec<_> = events.iter().map(|e| e.payload.as_deref()).collect();
    assert_eq!(payloads, [Some(r#"{"object_kind":"push"}"#), Some(r#"{"object_kind":"merge_request"}"#)]);
    // Sequences continue after explicit ids (PostgreSQL identity columns do not advance on explicit ids).
    if let Pool::Postgres(p) = &pool {
        for t in [
            "catalog_revision",
            "product_version",
            "api_token",
            "audit_log",
            "deploy_task",
            "task_log",
            "deploy_history",
            "env_release",
            "gitlab_event",
        ] {
            sqlx::query(&format!("SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))"))
                .execute(p)
                .await
                .unwrap();
        }
    }
    store::catalog::apply(&pool, "next: 1\n", "test").await.unwrap();
    assert_eq!(store::task::get(&pool, 101).await.unwrap().unwrap().image_tag.as_deref(), Some("feature-x-3f2a1c"));
    assert_eq!(store::deployed::frozen(&pool, "prod").await.unwrap().unwrap().reason, "release night");
    let next = store::task::enqueue(&pool, &crate::support::bare_task(tao::deploy::task::TaskKind::Release, "env-2"))
        .await
        .unwrap();
    assert!(next.0.id > 101);
}
both_backends!(migrations_apply_over_sample_data, upgrades_over_sample_data);
