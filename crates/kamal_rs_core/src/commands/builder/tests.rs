//! The builder's commands, each compared with the string Kamal 2.12 runs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;
use crate::test_support::config;
use serde_json::json;

#[test]
fn validate_image_is_kamals_line_and_runs_typed() {
    assert_eq!(
        validate_image("ghcr.io/acme/myapp:V", "myapp"),
        "docker inspect -f '{{ .Config.Labels.service }}' ghcr.io/acme/myapp:V | grep -x myapp || (echo \"Image ghcr.io/acme/myapp:V is missing the 'service' label\" && exit 1)"
    );
    assert_eq!(
        validate_image_typed("ghcr.io/acme/myapp:V", "myapp"),
        "docker image inspect -f '{{ .Config.Labels.service }}' ghcr.io/acme/myapp:V | grep -x myapp || (echo \"Image ghcr.io/acme/myapp:V is missing the 'service' label\" && exit 1)"
    );
}

fn builder_with(builder: serde_json::Value, docker_arch: Option<&str>) -> Builder {
    let c = config(
        &[json!({
            "service": "app", "image": "acme/app", "servers": ["1.1.1.1"],
            "registry": { "server": "ghcr.io", "username": "u", "password": "p" },
            "builder": builder
        })],
        None,
        "abc123",
    );
    Builder::new(&c, docker_arch).unwrap()
}

fn builder(b: serde_json::Value) -> Builder {
    builder_with(b, Some("amd64"))
}

const TAGS: &str = "-t ghcr.io/acme/app:abc123 -t ghcr.io/acme/app:latest";

#[test]
fn local_docker_container_is_the_default_driver() {
    let b = builder(json!({ "arch": "amd64" }));
    assert_eq!(b.kind, Kind::Local);
    assert_eq!(
        b.push("registry", false).0,
        format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --file Dockerfile . 2>&1")
    );
    assert_eq!(
        b.create().unwrap(),
        "docker buildx create --name kamal-local-docker-container --driver=docker-container"
    );
    assert_eq!(
        b.inspect_builder().unwrap(),
        "docker buildx inspect kamal-local-docker-container"
    );
    assert_eq!(
        b.remove().unwrap(),
        "docker buildx rm kamal-local-docker-container"
    );
    assert!(b.login_to_registry_locally());
    assert!(b.push_env().is_empty());
}

#[test]
fn docker_driver_has_no_builder_to_name_check_or_create() {
    let b = builder(json!({ "arch": "amd64", "driver": "docker" }));
    assert_eq!(
        b.push("registry", false).0,
        format!("docker buildx build --output=type=registry --platform linux/amd64 {TAGS} --label service=\"app\" --file Dockerfile . 2>&1")
    );
    assert_eq!(b.create(), None);
    assert_eq!(b.inspect_builder(), None);
    assert_eq!(b.remove(), None);
}

#[test]
fn multiple_arches_build_one_multi_platform_image() {
    let b = builder(json!({ "arch": ["amd64", "arm64"] }));
    assert!(b
        .push("registry", false)
        .0
        .starts_with("docker buildx build --output=type=registry --platform linux/amd64,linux/arm64 --builder kamal-local-docker-container -t"));
}

#[test]
fn remote_builder_over_ssh() {
    let b = builder(json!({ "arch": "arm64", "remote": "ssh://docker@builder.example" }));
    assert_eq!(b.kind, Kind::Remote);
    let name = "kamal-remote-ssh---docker-builder-example";
    assert_eq!(b.name(), name);
    assert_eq!(
        b.create().unwrap(),
        format!("docker context create {name}-context --description '{name} host' --docker 'host=ssh://docker@builder.example' ; docker buildx create --name {name} {name}-context")
    );
    assert_eq!(
        b.inspect_builder().unwrap(),
        format!("docker buildx inspect {name} | grep -q Endpoint:.*{name}-context && docker context inspect {name}-context --format '{{{{.Endpoints.docker.Host}}}}' | grep -xq ssh://docker@builder.example || (echo no compatible builder && exit 1)")
    );
    assert_eq!(
        b.remove().unwrap(),
        format!("docker context rm {name}-context ; docker buildx rm {name}")
    );
    assert_eq!(
        b.push("registry", false).0,
        format!("docker buildx build --output=type=registry --platform linux/arm64 --builder {name} {TAGS} --label service=\"app\" --file Dockerfile . 2>&1")
    );
    assert!(!b.login_to_registry_locally());
    assert_eq!(
        b.push_env(),
        vec![("BUILDKIT_NO_CLIENT_TOKEN".to_string(), "1".to_string())]
    );
}

#[test]
fn remote_set_but_every_arch_local_builds_locally() {
    let b = builder(json!({ "arch": "amd64", "remote": "ssh://builder" }));
    assert_eq!(b.kind, Kind::Local);
    assert_eq!(b.name(), "kamal-local-docker-container");
}

#[test]
fn hybrid_builds_the_local_arch_here_and_the_other_remotely() {
    let b = builder(json!({ "arch": ["amd64", "arm64"], "remote": "ssh://docker@builder" }));
    assert_eq!(b.kind, Kind::Hybrid);
    let name = "kamal-hybrid-docker-container-ssh---docker-builder";
    assert_eq!(b.name(), name);
    assert_eq!(
        b.create().unwrap(),
        format!("docker buildx create --platform linux/amd64 --name {name} --driver=docker-container && docker context create {name}-context --description '{name} host' --docker 'host=ssh://docker@builder' && docker buildx create --platform linux/arm64 --append --name {name} {name}-context")
    );
    assert!(b
        .push("registry", false)
        .0
        .contains("--platform linux/amd64,linux/arm64 --builder kamal-hybrid-"));
    // On an arm64 machine the same config builds amd64 remotely.
    let b = builder_with(
        json!({ "arch": ["amd64", "arm64"], "remote": "ssh://docker@builder" }),
        Some("arm64"),
    );
    assert!(b
        .create()
        .unwrap()
        .starts_with("docker buildx create --platform linux/arm64 --name"));
}

#[test]
fn local_disabled_with_a_remote_builds_everything_remotely() {
    let b =
        builder(json!({ "arch": ["amd64", "arm64"], "remote": "ssh://builder", "local": false }));
    assert_eq!(b.kind, Kind::Remote);
    assert!(b
        .push("registry", false)
        .0
        .contains("--platform linux/amd64,linux/arm64 --builder kamal-remote-ssh---builder "));
}

#[test]
fn registry_cache_with_default_and_custom_image() {
    let b = builder(json!({ "arch": "amd64", "cache": { "type": "registry" } }));
    assert!(b.push("registry", false).0.contains(&format!("{TAGS} --cache-to type=registry,ref=ghcr.io/acme/app-build-cache --cache-from type=registry,ref=ghcr.io/acme/app-build-cache --label service=\"app\"")));
    let b = builder(
        json!({ "arch": "amd64", "cache": { "type": "registry", "image": "acme/cache", "options": "mode=max,image-manifest=true" } }),
    );
    assert!(b.push("registry", false).0.contains("--cache-to type=registry,ref=ghcr.io/acme/cache,mode=max,image-manifest=true --cache-from type=registry,ref=ghcr.io/acme/cache --label"));
}

#[test]
fn gha_cache_reads_only_with_the_locating_options() {
    let b = builder(
        json!({ "arch": "amd64", "cache": { "type": "gha", "options": "mode=max,url=http://cache,scope=main" } }),
    );
    assert!(b.push("registry", false).0.contains("--cache-to type=gha,mode=max,url=http://cache,scope=main --cache-from type=gha,url=http://cache,scope=main --label"));
    let b = builder(json!({ "arch": "amd64", "cache": { "type": "gha" } }));
    assert!(b
        .push("registry", false)
        .0
        .contains("--cache-to type=gha --cache-from type=gha --label"));
}

#[test]
fn build_args_are_escaped_and_logged_redacted_and_secrets_go_by_id() {
    let b = builder(json!({
        "arch": "amd64",
        "args": { "RUBY_VERSION": "3.3.0", "NOTE": "a \"b\" $c", "EMPTY": "" },
        "secrets": ["GITHUB_TOKEN", "RAILS_MASTER_KEY"]
    }));
    let (sent, shown) = b.push("registry", false);
    assert_eq!(
        sent,
        format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --build-arg RUBY_VERSION=\"3.3.0\" --build-arg NOTE=\"a \\\"b\\\" \\$c\" --build-arg EMPTY --secret id=\"GITHUB_TOKEN\" --secret id=\"RAILS_MASTER_KEY\" --file Dockerfile . 2>&1")
    );
    assert_eq!(
        shown,
        format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --build-arg RUBY_VERSION=[REDACTED] --build-arg NOTE=[REDACTED] --build-arg EMPTY --secret id=\"GITHUB_TOKEN\" --secret id=\"RAILS_MASTER_KEY\" --file Dockerfile . 2>&1")
    );
    assert_eq!(b.secret_names(), vec!["GITHUB_TOKEN", "RAILS_MASTER_KEY"]);
}

#[test]
fn file_target_ssh_provenance_sbom_context_and_no_cache_in_order() {
    let b = builder(json!({
        "arch": "amd64", "dockerfile": "Dockerfile.prod", "target": "prod", "ssh": "default",
        "provenance": false, "sbom": true, "context": "../app"
    }));
    assert_eq!(
        b.push("registry", true).0,
        format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --file Dockerfile.prod --target prod --ssh default --provenance false --sbom true --no-cache ../app 2>&1")
    );
    assert_eq!(
        b.push("docker", false).0.split(' ').nth(3),
        Some("--output=type=docker")
    );
}

#[test]
fn a_destination_tags_latest_with_its_name() {
    let c = config(
        &[
            json!({ "service": "app", "image": "acme/app", "servers": ["1.1.1.1"],
                    "registry": { "server": "ghcr.io", "username": "u", "password": "p" },
                    "builder": { "arch": "amd64" } }),
            json!({ "servers": ["2.2.2.2"] }),
        ],
        Some("staging"),
        "abc123",
    );
    let b = Builder::new(&c, None).unwrap();
    assert!(b
        .push("registry", false)
        .0
        .contains("-t ghcr.io/acme/app:abc123 -t ghcr.io/acme/app:latest-staging --label"));
}

#[test]
fn cloud_driver_names_the_builder_after_the_driver() {
    let b = builder(json!({ "arch": "amd64", "driver": "cloud acme/builder" }));
    assert_eq!(b.kind, Kind::Cloud);
    assert_eq!(b.name(), "cloud-acme-builder");
    assert_eq!(
        b.create().unwrap(),
        "docker buildx create --driver cloud acme/builder"
    );
    assert_eq!(
        b.inspect_builder().unwrap(),
        "docker buildx inspect cloud-acme-builder"
    );
    assert!(b
        .push("registry", false)
        .0
        .contains("--builder cloud-acme-builder -t"));
}

#[test]
fn local_registry_builder_uses_the_host_network() {
    let c = config(
        &[
            json!({ "service": "app", "servers": ["1.1.1.1"], "registry": { "server": "localhost:5555" }, "builder": { "arch": "amd64" } }),
        ],
        None,
        "abc123",
    );
    let b = Builder::new(&c, None).unwrap();
    assert_eq!(b.name(), "kamal-local-registry-docker-container");
    assert_eq!(
        b.create().unwrap(),
        "docker buildx create --name kamal-local-registry-docker-container --driver=docker-container --driver-opt network=host"
    );
    assert!(b
        .push("registry", false)
        .0
        .contains("-t localhost:5555/app:abc123 -t localhost:5555/app:latest --label"));
    assert_eq!(
        local_registry_setup("5555"),
        "docker start kamal-docker-registry || docker run --detach -p 127.0.0.1:5555:5000 --name kamal-docker-registry registry:3"
    );
}

#[test]
fn pack_builds_with_buildpacks_then_pushes_both_tags() {
    let b = builder(json!({
        "arch": "amd64",
        "pack": { "builder": "heroku/builder:24", "buildpacks": ["heroku/ruby", "heroku/procfile"] },
        "args": { "BP_X": "1" }
    }));
    assert_eq!(b.kind, Kind::Pack);
    assert_eq!(
        b.push("registry", false).0,
        "pack build ghcr.io/acme/app --platform linux/amd64 --creation-time now --builder heroku/builder:24 --buildpack heroku/ruby --buildpack heroku/procfile --buildpack paketo-buildpacks/image-labels -t ghcr.io/acme/app:abc123 -t ghcr.io/acme/app:latest --env BP_IMAGE_LABELS=service=app --env BP_X=\"1\" --path . && docker push ghcr.io/acme/app:abc123 && docker push ghcr.io/acme/app:latest"
    );
    assert_eq!(
        b.inspect_builder().unwrap(),
        "pack builder inspect heroku/builder:24"
    );
}

#[test]
fn clone_directories_and_commands() {
    let clone = Clone::new(
        "app",
        Path::new("/home/me/my repo/web"),
        Path::new("/home/me/my repo"),
        Path::new("/tmp"),
    );
    let sha = format!("{:x}", Sha256::digest(b"/home/me/my repo/web"));
    let dir = format!("/tmp/kamal-clones/app-{}", &sha[..13]);
    assert_eq!(clone.clone_directory, PathBuf::from(&dir));
    assert_eq!(
        clone.build_directory,
        PathBuf::from(format!("{dir}/my repo/web"))
    );
    assert_eq!(
        clone.clone_command(),
        format!("git -C {dir} clone /home/me/my\\ repo --recurse-submodules")
    );
    assert_eq!(
        clone.reset_steps("f00"),
        vec![
            format!("git -C {dir}/my repo/web remote set-url origin /home/me/my\\ repo"),
            format!("git -C {dir}/my repo/web fetch origin"),
            format!("git -C {dir}/my repo/web reset --hard f00"),
            format!("git -C {dir}/my repo/web clean -fdx"),
            format!("git -C {dir}/my repo/web submodule update --init"),
            format!("git -C {dir}/my repo/web gc --auto --quiet"),
        ]
    );
    assert_eq!(
        clone.status(),
        format!("git -C {dir}/my repo/web status --porcelain")
    );
    assert_eq!(docker_arch("x86_64\n"), "amd64");
    assert_eq!(docker_arch("aarch64"), "arm64");
}
