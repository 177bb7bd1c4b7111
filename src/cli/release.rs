//! Product version and environment commands of the CLI (HTTP clients of the server): `release create`,
//! `release list`, `release show`, `env list`, `env show`, `env freeze`, `env unfreeze`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::json;

use super::client::{self, Client};
use super::output::{self, print_json, table};
use super::{deploy, EnvCommand, Outcome, ReleaseCommand};

/// `tao release …`.
pub(super) async fn release(cmd: ReleaseCommand, json: bool) -> Outcome {
    match cmd {
        ReleaseCommand::Create { product, version, components, server } => {
            let mut map = BTreeMap::new();
            for (name, v) in components {
                if let Some(prev) = map.insert(name.clone(), v) {
                    anyhow::bail!("--component {name} given twice (first {prev})");
                }
            }
            let body = json!({ "product": product, "version": version, "components": map });
            let (status, body) = Client::new(&server)?.post_json("/api/v1/releases", &body).await?;
            if json {
                print_json(&body);
            } else {
                let word = if status == 201 { "created" } else { "unchanged (already exists, identical):" };
                println!(
                    "{word} {} {}",
                    body["product"].as_str().unwrap_or(""),
                    body["version"].as_str().unwrap_or("")
                );
                print!("{}", output::release_components(&body));
            }
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::List { product, server } => {
            let body = Client::new(&server)?.get(&format!("/api/v1/releases/{}", client::segment(&product))).await?;
            if json {
                print_json(&body);
            } else {
                let rows = body
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            output::text(&r["version"]),
                            output::text(&r["created_at"]),
                            output::text(&r["created_by"]),
                            output::component_summary(r),
                        ]
                    })
                    .collect();
                print!("{}", table(&["VERSION", "CREATED", "BY", "COMPONENTS"], rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Show { product, version, server } => {
            let path = format!("/api/v1/releases/{}/{}", client::segment(&product), client::segment(&version));
            let body = Client::new(&server)?.get(&path).await?;
            if json {
                print_json(&body);
            } else {
                println!("{} {}", output::text(&body["product"]), output::text(&body["version"]));
                println!("created {} by {}", output::text(&body["created_at"]), output::text(&body["created_by"]));
                print!("{}", output::release_components(&body));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tao env …`.
pub(super) async fn env(cmd: EnvCommand, json: bool) -> Outcome {
    match cmd {
        EnvCommand::List { server } => {
            let body = Client::new(&server)?.get("/api/v1/environments").await?;
            if json {
                print_json(&body);
            } else {
                let rows = body
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        let hosts = e["hosts"].as_array().map(Vec::len).unwrap_or(0);
                        vec![
                            output::text(&e["name"]),
                            output::text(&e["tier"]),
                            output::text(&e["domain"]),
                            hosts.to_string(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["NAME", "TIER", "DOMAIN", "HOSTS"], rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        EnvCommand::Freeze { env, reason, server } => deploy::freeze(&env, &reason, &server, json).await,
        EnvCommand::Unfreeze { env, server } => deploy::unfreeze(&env, &server, json).await,
        EnvCommand::Show { env, server } => {
            let body = Client::new(&server)?.get(&format!("/api/v1/environments/{}", client::segment(&env))).await?;
            if json {
                print_json(&body);
            } else {
                print!("{}", output::environment(&body));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
