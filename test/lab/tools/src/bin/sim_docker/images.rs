//! Images: pull (from the simulated registry), tag, ls, inspect, rm, prune; login and info.

use super::*;

pub(crate) fn images(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("query");
    let (flags, _) = split_flags(args, &["-a", "--all", "-q", "--quiet", "--no-trunc"]);
    let filters = values(&flags, &["--filter", "-f"]);
    let format = values(&flags, &["--format"]).first().copied();
    sim.with_state(|s| {
        let mut rows = Vec::new();
        for i in &s.images {
            let labelled = filters.iter().all(|f| match f.strip_prefix("label=") {
                Some(l) => match l.split_once('=') {
                    Some((k, v)) => i.labels.get(k).map(String::as_str) == Some(v),
                    None => i.labels.contains_key(l),
                },
                None => true,
            });
            let references: Vec<&str> = filters
                .iter()
                .filter_map(|f| f.strip_prefix("reference="))
                .collect();
            let short = i.id.trim_start_matches("sha256:")[..12].to_string();
            let tags: Vec<(String, String)> = if i.tags.is_empty() {
                vec![("<none>".into(), "<none>".into())]
            } else {
                i.tags
                    .iter()
                    .map(|t| match t.rsplit_once(':') {
                        Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
                        _ => (t.clone(), "latest".into()),
                    })
                    .collect()
            };
            for (repo, tag) in tags {
                let full = format!("{repo}:{tag}");
                if labelled && (references.is_empty() || references.contains(&full.as_str())) {
                    rows.push(json!({"ID": short, "Repository": repo, "Tag": tag}));
                }
            }
        }
        if has(&flags, &["-q", "--quiet"]) {
            return Out::ok(
                rows.iter()
                    .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or("")))
                    .collect::<String>(),
            );
        }
        format_rows(&rows, format, |r| {
            format!(
                "{}:{} {}",
                r["Repository"].as_str().unwrap_or(""),
                r["Tag"].as_str().unwrap_or(""),
                r["ID"].as_str().unwrap_or("")
            )
        })
    })
}

pub(crate) fn image_json(i: &Image) -> Value {
    let labels: serde_json::Map<String, Value> = i
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"Id": i.id, "RepoTags": i.tags, "Config": {"Labels": labels}})
}

pub(crate) fn pull(sim: &Sim, args: &[&str]) -> Out {
    let Some(name) = args.iter().find(|a| !a.starts_with('-')) else {
        return Out::err("\"docker pull\" requires exactly 1 argument.\n", 1);
    };
    let r = reference(name);
    if sim.fault().as_deref() == Some("pull") {
        sim.wait("query");
        return Out::err(format!("Error response from daemon: Get \"https://{r}/v2/\": net/http: request canceled (simulated pull failure)\n"), 1);
    }
    let Some(found) = sim.registry().get(&r).cloned() else {
        sim.wait("query");
        return Out::err(format!("Error response from daemon: manifest for {r} not found: manifest unknown: manifest unknown\n"), 1);
    };
    let cached = sim.with_state(|s| s.images.iter().any(|i| i.id == found.id));
    sim.wait(if cached { "pull_cached" } else { "pull" });
    let tag = r.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let fresh = sim.with_state(|s| {
        let had_tag = s.image(&r).is_some_and(|i| i.id == found.id);
        if !s.images.iter().any(|i| i.id == found.id) {
            s.images.push(Image {
                id: found.id.clone(),
                tags: Vec::new(),
                labels: found.labels.clone(),
                healthy: found.healthy,
            });
        }
        s.tag(&found.id, &r);
        !had_tag
    });
    let status = if fresh {
        format!("Downloaded newer image for {r}")
    } else {
        format!("Image is up to date for {r}")
    };
    Out::ok(format!(
        "{tag}: Pulling from {}\nDigest: sha256:{}\nStatus: {status}\n{r}\n",
        r.rsplit_once(':').map(|(n, _)| n).unwrap_or(&r),
        found.id.trim_start_matches("sha256:")
    ))
}

pub(crate) fn tag(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let [source, target] = args else {
        return Out::err("\"docker tag\" requires exactly 2 arguments.\n", 1);
    };
    sim.with_state(|s| match s.image(source).map(|i| i.id.clone()) {
        Some(id) => {
            s.tag(&id, &reference(target));
            Out::ok("")
        }
        None => Out::err(
            format!("Error response from daemon: No such image: {source}\n"),
            1,
        ),
    })
}

pub(crate) fn rmi(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let (flags, names) = split_flags(args, &["-f", "--force", "--no-prune"]);
    let force = has(&flags, &["-f", "--force"]);
    sim.with_state(|s| {
        let mut out = Out::ok("");
        for name in names {
            let r = reference(name);
            let Some(index) = s
                .images
                .iter()
                .position(|i| i.tags.contains(&r) || i.id == name)
            else {
                out.stderr.push_str(&format!(
                    "Error response from daemon: No such image: {name}\n"
                ));
                if !force {
                    out.code = 1;
                }
                continue;
            };
            let image = &mut s.images[index];
            image.tags.retain(|t| *t != r);
            out.stdout.push_str(&format!("Untagged: {r}\n"));
            let id = image.id.clone();
            if s.images[index].tags.is_empty() && !s.in_use(&id) {
                s.images.remove(index);
                out.stdout.push_str(&format!("Deleted: {id}\n"));
            }
        }
        out
    })
}

pub(crate) fn image_prune(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let (flags, _) = split_flags(args, &["-f", "--force", "-a", "--all"]);
    let all = has(&flags, &["-a", "--all"]);
    let labels: Vec<&str> = values(&flags, &["--filter"])
        .into_iter()
        .filter_map(|f| f.strip_prefix("label="))
        .collect();
    sim.with_state(|s| {
        let in_use: Vec<String> = s.containers.iter().map(|c| c.image_id.clone()).collect();
        s.images.retain(|i| {
            let labelled = labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => i.labels.get(k).map(String::as_str) == Some(v),
                None => i.labels.contains_key(*l),
            });
            !(labelled && (i.tags.is_empty() || all) && !in_use.contains(&i.id))
        });
        Out::ok("Total reclaimed space: 0B\n")
    })
}

pub(crate) fn login(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("query");
    // docker's CLI reads login's flags after the server too (`docker login SERVER -u U -p P`, as
    // Kamal writes it).
    let (flags, rest) = split_interspersed(args, &["--password-stdin"]);
    let server = rest
        .first()
        .copied()
        .unwrap_or("https://index.docker.io/v1/");
    let user = values(&flags, &["-u", "--username"])
        .first()
        .copied()
        .unwrap_or("");
    let password = values(&flags, &["-p", "--password"])
        .first()
        .copied()
        .unwrap_or("");
    let auth = base64(&format!("{user}:{password}"));
    // As docker writes it: the skip-login check of kamal_rs reads this shape.
    let config = format!(
        "{{\n\t\"auths\": {{\n\t\t\"{server}\": {{\n\t\t\t\"auth\": \"{auth}\"\n\t\t}}\n\t}}\n}}"
    );
    let dir = sim.home.join(".docker");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("config.json"), config);
    Out::ok("Login Succeeded\n")
}

pub(crate) fn info(args: &[&str]) -> Out {
    let (flags, _) = split_flags(args, &[]);
    let data = json!({"RegistryConfig": {"Mirrors": []}, "ServerVersion": "sim"});
    match values(&flags, &["--format", "-f"]).first() {
        Some(f) => match template::render(f, &data) {
            Ok(s) => Out::ok(format!("{s}\n")),
            Err(e) => Out::err(format!("{e}\n"), 1),
        },
        None => Out::ok("Server Version: sim\n"),
    }
}
