//! Deploy commands of the CLI (HTTP clients of the server): `deploy`, `rollback`, `task`, `status`,
//! `env freeze|unfreeze`. `--wait` follows the task log and exits with the task's result; `--dry-run`
//! prints the plan and queues nothing.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{segment, Client};
use super::output::{print_json, table, text};
use super::ServerArgs;

/// `tao deploy`: a product version, or with `--component` a single component build.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// `PRODUCT VERSION ENV`, or only `ENV` with `--component` and `--image-tag`.
    #[arg(num_args = 1..=3, value_name = "PRODUCT VERSION ENV")]
    pub args: Vec<String>,
    /// Only these components of the product version (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "component")]
    pub components: Vec<String>,
    /// Deploy one component build (dev/test environments only).
    #[arg(long, requires = "image_tag")]
    pub component: Option<String>,
    /// The build's image tag or sha256 digest.
    #[arg(long, requires = "component")]
    pub image_tag: Option<String>,
    /// Replace containers even when they already run the target.
    #[arg(long)]
    pub force: bool,
    /// Keep a failed deploy's state for debugging instead of rolling back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Follow the task's log and exit with its result.
    #[arg(long)]
    pub wait: bool,
    /// Print the plan; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Idempotency key: the same key always yields the same task (e.g. a CI job id).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `tao rollback ENV [--to VERSION]`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Environment.
    pub env: String,
    /// Product version to return to [default: the one before the current].
    #[arg(long)]
    pub to: Option<String>,
    /// Follow the task's log and exit with its result.
    #[arg(long)]
    pub wait: bool,
    /// Print the plan; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Idempotency key.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `tao task …`
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Show a task with its log.
    Show {
        /// Task id.
        id: i64,
        /// Keep following the log until the task ends.
        #[arg(long)]
        follow: bool,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Recent tasks, newest first.
    List {
        /// Only this environment.
        #[arg(long)]
        env: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a queued task, or stop a running one (it rolls back what it changed).
    Cancel {
        /// Task id.
        id: i64,
        /// The server.
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `tao status ENV`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Environment.
    pub env: String,
    /// Compare the containers on the hosts with the recorded state and report drift (exit 1 on drift).
    #[arg(long)]
    pub check: bool,
    /// The server.
    #[command(flatten)]
    pub server: ServerArgs,
}

type Outcome = anyhow::Result<ExitCode>;

/// `tao deploy`.
pub async fn deploy(a: DeployArgs, json: bool) -> Outcome {
    let client = Client::new(&a.server)?;
    let (body, query) = match (&a.component, a.args.as_slice()) {
        (Some(component), [env]) => {
            let tag = a.image_tag.clone().unwrap_or_default();
            let body = json!({ "env": env, "component": component, "image_tag": tag, "force": a.force, "rollback": !a.no_rollback });
            let query = format!("env={}&component={}&image_tag={}", segment(env), segment(component), segment(&tag));
            (body, query)
        }
        (None, [product, version, env]) => {
            let body = json!({
                "product": product, "version": version, "env": env, "components": a.components,
                "force": a.force, "rollback": !a.no_rollback,
            });
            let mut query = format!("env={}&product={}&version={}", segment(env), segment(product), segment(version));
            if !a.components.is_empty() {
                query.push_str(&format!("&components={}", segment(&a.components.join(","))));
            }
            if a.force {
                query.push_str("&force=true");
            }
            (body, query)
        }
        _ => anyhow::bail!("expected `tao deploy PRODUCT VERSION ENV` or `tao deploy --component C --image-tag T ENV`"),
    };
    if a.dry_run {
        return show_plan(&client, &format!("/api/v1/deploys/plan?{query}"), json).await;
    }
    let (_, task) = client.post_keyed("/api/v1/deploys", &body, a.idempotency_key.as_deref()).await?;
    queued(&client, task, a.wait, json).await
}

/// `tao rollback`.
pub async fn rollback(a: RollbackArgs, json: bool) -> Outcome {
    let client = Client::new(&a.server)?;
    if a.dry_run {
        let mut path = format!("/api/v1/deploys/plan?env={}&rollback=true", segment(&a.env));
        if let Some(to) = &a.to {
            path.push_str(&format!("&rollback_to={}", segment(to)));
        }
        return show_plan(&client, &path, json).await;
    }
    let body = json!({ "env": a.env, "to": a.to });
    let (_, task) = client.post_keyed("/api/v1/rollbacks", &body, a.idempotency_key.as_deref()).await?;
    queued(&client, task, a.wait, json).await
}

async fn show_plan(client: &Client, path: &str, json: bool) -> Outcome {
    let body = client.get(path).await?;
    if json {
        print_json(&body);
        return Ok(ExitCode::SUCCESS);
    }
    let plan = &body["plan"];
    let mut rows = Vec::new();
    for (i, wave) in plan["waves"].as_array().into_iter().flatten().enumerate() {
        for step in wave.as_array().into_iter().flatten() {
            let from = step["previous"]["version"].as_str().map(str::to_string).unwrap_or_else(|| {
                if step["previous"].is_null() {
                    "-".into()
                } else {
                    format!("@ {}", text(&step["previous"]["image_tag"]))
                }
            });
            let to = match step["spec"]["version"].as_str() {
                Some(v) => v.to_string(),
                None => format!("@ {}", text(&step["spec"]["image_tag"])),
            };
            rows.push(vec![
                (i + 1).to_string(),
                text(&step["host"]["name"]),
                text(&step["spec"]["component"]),
                from,
                to,
            ]);
        }
    }
    println!("plan for {}: {} step(s)", text(&plan["env"]), body["steps"]);
    print!("{}", table(&["WAVE", "HOST", "COMPONENT", "FROM", "TO"], rows));
    for skip in plan["unchanged"].as_array().into_iter().flatten() {
        println!("unchanged: {} on {} ({})", text(&skip["component"]), text(&skip["host"]), text(&skip["reason"]));
    }
    Ok(ExitCode::SUCCESS)
}

async fn queued(client: &Client, task: Value, wait: bool, json: bool) -> Outcome {
    let id = task["task_id"].as_i64().unwrap_or_default();
    if !wait {
        if json {
            print_json(&task);
        } else {
            let word = if task["created"] == json!(false) { "already queued as" } else { "queued" };
            println!("{word} task {id} ({}); follow it with `tao task show {id} --follow`", text(&task["status"]));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        println!("task {id} queued; following its log");
    }
    follow(client, id, json).await
}

async fn follow(client: &Client, id: i64, json: bool) -> Outcome {
    let mut last = None;
    client
        .lines(&format!("/api/v1/tasks/{id}/log?follow=1"), |line| {
            if json {
                println!("{line}");
            }
            if line.get("task").is_some() {
                last = Some(line["task"].clone());
            } else if !json {
                println!("{}", log_text(&line));
            }
        })
        .await?;
    let end = match last {
        Some(end) => end,
        None => client.get(&format!("/api/v1/tasks/{id}")).await?,
    };
    let status = text(&end["status"]);
    if !json {
        match end["error"].as_str() {
            Some(e) => println!("task {id} {status}: {e}"),
            None => println!("task {id} {status}"),
        }
    }
    Ok(if status == "succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn log_text(line: &Value) -> String {
    let place = [line["host"].as_str(), line["component"].as_str()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    format!(
        "{} {:5} {}{}{}",
        text(&line["at"]),
        text(&line["level"]),
        place,
        if place.is_empty() { "" } else { ": " },
        text(&line["line"])
    )
}

/// `tao task …`.
pub async fn task(cmd: TaskCommand, json: bool) -> Outcome {
    match cmd {
        TaskCommand::Show { id, follow: true, server } => follow(&Client::new(&server)?, id, json).await,
        TaskCommand::Show { id, follow: false, server } => {
            let client = Client::new(&server)?;
            let t = client.get(&format!("/api/v1/tasks/{id}")).await?;
            if json {
                print_json(&t);
                return Ok(ExitCode::SUCCESS);
            }
            println!("task {id}: {} {} → {}  {}", text(&t["kind"]), what(&t), text(&t["env"]), text(&t["status"]));
            println!("requested by {} at {}", text(&t["requested_by"]), text(&t["created_at"]));
            if let Some(e) = t["error"].as_str() {
                println!("error: {e}");
            }
            client.lines(&format!("/api/v1/tasks/{id}/log"), |line| println!("{}", log_text(&line))).await?;
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::List { env, limit, server } => {
            let mut path = format!("/api/v1/tasks?limit={limit}");
            if let Some(e) = &env {
                path.push_str(&format!("&env={}", segment(e)));
            }
            let body = Client::new(&server)?.get(&path).await?;
            if json {
                print_json(&body);
                return Ok(ExitCode::SUCCESS);
            }
            let rows = body
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        text(&t["id"]),
                        text(&t["env"]),
                        text(&t["kind"]),
                        what(t),
                        text(&t["status"]),
                        text(&t["created_at"]),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "ENV", "KIND", "WHAT", "STATUS", "CREATED"], rows));
            Ok(ExitCode::SUCCESS)
        }
        TaskCommand::Cancel { id, server } => {
            let (_, body) =
                Client::new(&server)?.post_keyed(&format!("/api/v1/tasks/{id}/cancel"), &json!({}), None).await?;
            if json {
                print_json(&body);
            } else {
                println!("task {id}: {}", text(&body["result"]));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn what(t: &Value) -> String {
    match (t["product"].as_str(), t["version"].as_str(), t["component"].as_str()) {
        (Some(p), Some(v), _) => format!("{p} {v}"),
        (_, _, Some(c)) => format!("{c} @ {}", text(&t["image_tag"])),
        _ => "-".into(),
    }
}

/// `tao status ENV [--check]`.
pub async fn status(a: StatusArgs, json: bool) -> Outcome {
    let client = Client::new(&a.server)?;
    if a.check {
        let body = client.get(&format!("/api/v1/environments/{}/check", segment(&a.env))).await?;
        let drift = body["drift"].as_array().cloned().unwrap_or_default();
        if !json {
            for o in body["orphans"].as_array().into_iter().flatten() {
                println!("{}", text(o));
            }
        }
        if json {
            print_json(&body);
        } else if drift.is_empty() {
            println!("{}: every recorded container runs as recorded", a.env);
        } else {
            let rows = drift
                .iter()
                .map(|d| vec![text(&d["host"]), text(&d["component"]), text(&d["expected"]), text(&d["found"])])
                .collect();
            print!("{}", table(&["HOST", "COMPONENT", "RECORDED", "FOUND"], rows));
        }
        return Ok(if drift.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let env = client.get(&format!("/api/v1/environments/{}", segment(&a.env))).await?;
    if json {
        print_json(&env);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}  tier {}", text(&env["name"]), text(&env["tier"]));
    if let Some(f) = env["frozen"].as_object() {
        println!("FROZEN by {}: {}", text(&f["frozen_by"]), text(&f["reason"]));
    }
    if let Some(r) = env["releases"].as_array().and_then(|r| r.first()) {
        println!(
            "product version: {} {} (task {}, {})",
            text(&r["product"]),
            text(&r["version"]),
            r["task_id"],
            text(&r["deployed_at"])
        );
    }
    let rows = env["deployed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            vec![text(&d["component"]), text(&d["host"]), text(&d["version"]), text(&d["since"]), text(&d["task_id"])]
        })
        .collect();
    print!("{}", table(&["COMPONENT", "HOST", "VERSION", "SINCE", "TASK"], rows));
    Ok(ExitCode::SUCCESS)
}

/// `tao env freeze ENV --reason …`.
pub async fn freeze(env: &str, reason: &str, server: &ServerArgs, json: bool) -> Outcome {
    let (_, body) = Client::new(server)?
        .post_keyed(&format!("/api/v1/environments/{}/freeze", segment(env)), &json!({ "reason": reason }), None)
        .await?;
    if json {
        print_json(&body);
    } else {
        println!("{env} is frozen: {reason}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `tao env unfreeze ENV`.
pub async fn unfreeze(env: &str, server: &ServerArgs, json: bool) -> Outcome {
    let body = Client::new(server)?.delete(&format!("/api/v1/environments/{}/freeze", segment(env))).await?;
    if json {
        print_json(&body);
    } else if body["unfrozen"] == json!(true) {
        println!("{env} is no longer frozen");
    } else {
        println!("{env} was not frozen");
    }
    Ok(ExitCode::SUCCESS)
}
