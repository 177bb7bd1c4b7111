//! Product versions ("releases"): `monitor 1.1.0 = {ops: 1.1.0, sql: 1.0.0, …}`, immutable once created.
//!
//! Creating the same product version twice with the same component versions is a no-op; with different
//! ones it is a conflict. The check and the insert run in one transaction, and a concurrent creator that
//! wins the unique index is re-read, so the outcome is the same however requests interleave. Inputs are
//! validated by the caller (`crate::catalog`); this module stores and reads.

use std::collections::BTreeMap;

use super::{is_unique_violation, now_ms, Pool, StoreError};

pub use crate::catalog::release::{ProductVersion, ReleaseComponent};

/// What to create.
#[derive(Debug, Clone)]
pub struct NewProductVersion {
    /// Product name (validated).
    pub product: String,
    /// Version (validated, normalized).
    pub version: String,
    /// Live catalog revision.
    pub catalog_revision: Option<i64>,
    /// Actor.
    pub created_by: String,
    /// Every component of the product.
    pub components: Vec<ReleaseComponent>,
}

/// Result of [`create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Stored now.
    Created(ProductVersion),
    /// Already stored with the same component versions; nothing changed.
    Unchanged(ProductVersion),
    /// Already stored with different component versions; nothing changed.
    Conflict(ProductVersion),
}

#[derive(sqlx::FromRow)]
struct HeadRow {
    id: i64,
    product: String,
    version: String,
    catalog_revision: Option<i64>,
    created_by: String,
    created_at: i64,
}

#[derive(sqlx::FromRow)]
struct ComponentRow {
    product_version_id: i64,
    component: String,
    version: String,
    git_tag: String,
    image: Option<String>,
    image_tag: String,
    image_digest: Option<String>,
}

impl ComponentRow {
    fn into_part(self) -> (i64, ReleaseComponent) {
        let ComponentRow { product_version_id, component, version, git_tag, image, image_tag, image_digest } = self;
        (product_version_id, ReleaseComponent { component, version, git_tag, image, image_tag, image_digest })
    }
}

const HEAD: &str = "SELECT id, product, version, catalog_revision, created_by, created_at FROM product_version";
const PARTS: &str = "SELECT c.product_version_id, c.component, c.version, c.git_tag, c.image, c.image_tag, \
                     c.image_digest FROM product_version_component c";

/// Creates a product version unless it exists (see [`CreateOutcome`]).
pub async fn create(pool: &Pool, new: &NewProductVersion) -> Result<CreateOutcome, StoreError> {
    if let Some(existing) = get(pool, &new.product, &new.version).await? {
        return Ok(compare(existing, new));
    }
    let won = match insert(pool, new).await {
        Ok(()) => true,
        // Lost a race with a concurrent creation: judge the request against the winner.
        Err(StoreError::Db(e)) if is_unique_violation(&e) => false,
        Err(e) => return Err(e),
    };
    let stored = get(pool, &new.product, &new.version).await?.ok_or(StoreError::Corrupt {
        what: "product_version",
        detail: format!("{} {} vanished after insert", new.product, new.version),
    })?;
    Ok(if won { CreateOutcome::Created(stored) } else { compare(stored, new) })
}

fn version_map(new: &NewProductVersion) -> BTreeMap<&str, &str> {
    new.components.iter().map(|c| (c.component.as_str(), c.version.as_str())).collect()
}

fn compare(existing: ProductVersion, new: &NewProductVersion) -> CreateOutcome {
    if existing.version_map() == version_map(new) {
        CreateOutcome::Unchanged(existing)
    } else {
        CreateOutcome::Conflict(existing)
    }
}

async fn insert(pool: &Pool, new: &NewProductVersion) -> Result<(), StoreError> {
    let head = "INSERT INTO product_version (product, version, catalog_revision, created_by, created_at) \
                VALUES ($1, $2, $3, $4, $5) RETURNING id";
    let part = "INSERT INTO product_version_component \
                (product_version_id, component, version, git_tag, image, image_tag, image_digest) \
                VALUES ($1, $2, $3, $4, $5, $6, $7)";
    crate::with_pool!(pool, p => {
        let mut tx = p.begin().await?;
        let id: i64 = sqlx::query_scalar(head)
            .bind(&new.product)
            .bind(&new.version)
            .bind(new.catalog_revision)
            .bind(&new.created_by)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
        for c in &new.components {
            sqlx::query(part)
                .bind(id)
                .bind(&c.component)
                .bind(&c.version)
                .bind(&c.git_tag)
                .bind(&c.image)
                .bind(&c.image_tag)
                .bind(&c.image_digest)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// One product version.
pub async fn get(pool: &Pool, product: &str, version: &str) -> Result<Option<ProductVersion>, StoreError> {
    let sql = format!("{HEAD} WHERE product = $1 AND version = $2");
    let head: Option<HeadRow> =
        crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(product).bind(version).fetch_optional(p).await)?;
    let Some(head) = head else { return Ok(None) };
    let sql = format!("{PARTS} WHERE c.product_version_id = $1 ORDER BY c.component");
    let parts: Vec<ComponentRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(head.id).fetch_all(p).await)?;
    Ok(Some(assemble(head, parts.into_iter().map(|r| r.into_part().1).collect())))
}

/// Every version of `product`, newest (most recently created) first.
pub async fn list(pool: &Pool, product: &str) -> Result<Vec<ProductVersion>, StoreError> {
    let sql = format!("{HEAD} WHERE product = $1 ORDER BY id DESC");
    let heads: Vec<HeadRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(product).fetch_all(p).await)?;
    let sql = format!(
        "{PARTS} JOIN product_version v ON v.id = c.product_version_id WHERE v.product = $1 ORDER BY c.component"
    );
    let parts: Vec<ComponentRow> = crate::with_pool!(pool, p => sqlx::query_as(&sql).bind(product).fetch_all(p).await)?;
    let mut by_head: BTreeMap<i64, Vec<ReleaseComponent>> = BTreeMap::new();
    for row in parts {
        let (head, part) = row.into_part();
        by_head.entry(head).or_default().push(part);
    }
    Ok(heads
        .into_iter()
        .map(|h| {
            let parts = by_head.remove(&h.id).unwrap_or_default();
            assemble(h, parts)
        })
        .collect())
}

fn assemble(head: HeadRow, components: Vec<ReleaseComponent>) -> ProductVersion {
    ProductVersion {
        product: head.product,
        version: head.version,
        catalog_revision: head.catalog_revision,
        created_by: head.created_by,
        created_at: head.created_at,
        components,
    }
}
