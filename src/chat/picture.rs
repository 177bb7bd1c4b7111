//! The chat commands that answer with a picture, `dora` and `cfd`: the product (and environment) checked
//! against the catalog, then the same PNG `tao report` writes, drawn by `crate::metrics::report` from the
//! store, with its summary as the reply's text.
//!
//! Called by `dispatch` after authorization (reading needs the reporter level, like `status`); must not
//! know how a transport delivers the file (a Discord attachment, a GitLab upload).

use super::command::Days;
use super::dispatch::Attachment;
use crate::catalog::{Catalog, EnvName, ProductName, Version};
use crate::metrics::report::{CfdOptions, DoraOptions, Picture, ReportError, DEFAULT_DAYS};
use crate::service::{ServiceError, Services};
use crate::store::now_ms;

type Drawn = Result<(String, Attachment), ServiceError>;

/// `dora <product> [env <env>] [days <days>]`: the DORA picture and its summary.
pub(super) async fn dora(
    services: &Services,
    product: &ProductName,
    env: Option<&EnvName>,
    days: Option<Days>,
) -> Drawn {
    let catalog = services.catalog_now();
    known(&catalog, product.as_str(), env.map(|e| e.as_str()))?;
    let opts =
        DoraOptions { env: env.map(|e| e.to_string()), days: days_of(days), ..DoraOptions::new(product.as_str()) };
    attach(services.dora_picture(&opts, now_ms()).await)
}

/// `cfd <product> [version <version>] [days <days>]`: the cumulative flow picture and its summary.
pub(super) async fn cfd(
    services: &Services,
    product: &ProductName,
    version: Option<&Version>,
    days: Option<Days>,
) -> Drawn {
    let catalog = services.catalog_now();
    known(&catalog, product.as_str(), None)?;
    let opts = CfdOptions {
        version: version.map(|v| v.to_string()),
        days: days_of(days),
        ..CfdOptions::new(product.as_str())
    };
    attach(services.cfd_picture(&opts, now_ms()).await)
}

fn days_of(days: Option<Days>) -> usize {
    days.map_or(DEFAULT_DAYS, Days::get)
}

fn attach(drawn: Result<Picture, ReportError>) -> Drawn {
    let Picture { file_name, png, summary } = drawn.map_err(from_report)?;
    Ok((summary, Attachment { file_name, bytes: png }))
}

/// Whether `product` (and `env`, when given) are in the catalog; the error lists what is.
fn known(catalog: &Catalog, product: &str, env: Option<&str>) -> Result<(), ServiceError> {
    if !catalog.products.contains_key(product) {
        let names: Vec<&str> = catalog.products.keys().map(|n| n.as_str()).collect();
        return Err(ServiceError::NotFound(format!("unknown product {product:?} (known: {})", names.join(", "))));
    }
    match env {
        Some(env) if !catalog.environments.contains_key(env) => {
            let names: Vec<&str> = catalog.environments.keys().map(|n| n.as_str()).collect();
            Err(ServiceError::NotFound(format!("unknown environment {env:?} (known: {})", names.join(", "))))
        }
        _ => Ok(()),
    }
}

fn from_report(e: ReportError) -> ServiceError {
    match e {
        ReportError::Store(e) => ServiceError::Store(e),
        other => {
            tracing::error!(error = %other, "cannot draw a chat picture");
            ServiceError::Upstream(format!("cannot draw the picture: {other}"))
        }
    }
}
