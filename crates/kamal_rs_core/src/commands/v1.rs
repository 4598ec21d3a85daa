//! The remote commands of a Kamal 1.9 deploy (`lib/kamal/commands/{app,traefik}.rb`, `lib/kamal/commands/app/cord.rb`, tag v1.9.3): the app container with its Traefik labels
//! and health "cord", Traefik itself, the env files of `kamal env push`, the lock, the audit lines and
//! the prune, as exact strings. The shared parts (names, env merge, logging) come from `App`.

use super::app::App;
use crate::config::v1_settings::{stop_wait_time, Healthcheck, TraefikSettings};
use crate::config::{Configuration, Role};
use crate::shell::{argumentize_as, optionize_as, Escaping};
use crate::value::{Map, Value};

pub const TRAEFIK_DEFAULT_IMAGE: &str = "traefik:v2.11";
const CORD_FILE: &str = "cord";

/// The 1.9 `Commands::App` of one role.
pub struct AppV1<'a> {
    pub app: App<'a>,
    /// 32 hex digits, one per run: names the cord directories of this run's containers.
    pub run_id: &'a str,
}

impl<'a> AppV1<'a> {
    pub fn new(config: &'a Configuration, role: &'a Role, run_id: &'a str) -> Self {
        AppV1 {
            app: App::new(config, role),
            run_id,
        }
    }

    fn config(&self) -> &Configuration {
        self.app.config
    }

    fn role(&self) -> &Role {
        self.app.role
    }

    pub fn prefix(&self) -> String {
        self.app.container_prefix()
    }

    pub fn container_name(&self, version: &str) -> String {
        self.app.container_name(version)
    }

    /// 1.9: a role runs Traefik when it says so, else when it is the primary role.
    pub fn running_traefik(&self) -> bool {
        self.app.settings().running_traefik()
    }

    pub fn healthcheck(&self) -> Healthcheck {
        Healthcheck::of(self.config(), self.role(), self.running_traefik())
    }

    /// The root `healthcheck.max_attempts` (what 1.9's poller reads), default 7.
    pub fn max_attempts(&self) -> i64 {
        Healthcheck::root_max_attempts(self.config())
    }

    pub fn uses_cord(&self) -> bool {
        self.running_traefik() && self.healthcheck().cord().is_some()
    }

    /// `.kamal/cords/S-R[-D]-<run id>`, relative to the login directory.
    pub fn cord_dir(&self) -> String {
        format!(".kamal/cords/{}-{}", self.prefix(), self.run_id)
    }

    /// `mkdir -p DIR ; touch DIR/cord`.
    pub fn tie_cord(&self) -> String {
        let dir = self.cord_dir();
        format!("mkdir -p {dir} ; touch {dir}/{CORD_FILE}")
    }

    /// `tie_cord` as a kamal_rs script runs it (`server::ensure_directory`).
    pub fn tie_cord_in_script(&self) -> String {
        let dir = self.cord_dir();
        format!(
            "{} ; touch {dir}/{CORD_FILE}",
            super::server::ensure_directory(&dir)
        )
    }

    /// The cord directory of the container of `version` (its mount at the cord path).
    pub fn cord(&self, version: &str) -> String {
        let cord = self.healthcheck().cord().unwrap_or_default();
        format!(
            "docker inspect -f '{{{{ range .Mounts }}}}{{{{printf \"%s %s\\n\" .Source .Destination}}}}{{{{ end }}}}' {} | awk '$2 == \"{cord}\" {{print $1}}'",
            self.container_name(version)
        )
    }

    pub fn cut_cord(dir: &str) -> String {
        format!("rm -r {dir}")
    }

    fn health_check_args(&self) -> Vec<String> {
        let hc = self.healthcheck();
        if !(self.running_traefik() || hc.set_port_or_path()) {
            return Vec::new();
        }
        let cmd = if self.uses_cord() {
            format!(
                "({}) && (stat {}/{CORD_FILE} > /dev/null || exit 1)",
                hc.cmd(),
                hc.cord().unwrap_or_default()
            )
        } else {
            hc.cmd()
        };
        let mut args = optionize_as(
            &[
                ("health-cmd".into(), Value::str(cmd)),
                ("health-interval".into(), Value::str(hc.interval())),
            ],
            None,
            Escaping::V1,
        );
        if self.uses_cord() {
            args.push("--volume".into());
            args.push(format!(
                "$(pwd)/{}:{}",
                self.cord_dir(),
                hc.cord().unwrap_or_default()
            ));
        }
        args
    }

    pub fn env_file_path(&self) -> String {
        format!(".kamal/env/roles/{}.env", self.prefix())
    }

    fn traefik_labels(&self) -> Vec<(String, String)> {
        if !self.running_traefik() {
            return Vec::new();
        }
        let s = self.prefix();
        vec![
            (
                format!("traefik.http.services.{s}.loadbalancer.server.scheme"),
                "http".into(),
            ),
            (
                format!("traefik.http.routers.{s}.rule"),
                "PathPrefix(`/`)".into(),
            ),
            (format!("traefik.http.routers.{s}.priority"), "2".into()),
            (
                format!("traefik.http.middlewares.{s}-retry.retry.attempts"),
                "5".into(),
            ),
            (
                format!("traefik.http.middlewares.{s}-retry.retry.initialinterval"),
                "500ms".into(),
            ),
            (
                format!("traefik.http.routers.{s}.middlewares"),
                format!("{s}-retry@docker"),
            ),
        ]
    }

    /// Default labels, Traefik's, then the root's and the role's own, later keys replacing earlier.
    fn labels(&self) -> Map {
        let c = self.config();
        let mut labels = Map::new();
        labels.set("service", Value::str(c.service()));
        labels.set("role", Value::str(&self.role().name));
        labels.set(
            "destination",
            c.destination.clone().map(Value::str).unwrap_or(Value::Nil),
        );
        for (k, v) in self.traefik_labels() {
            labels.set(&k, Value::str(v));
        }
        for extra in self.app.settings().labels() {
            if let Value::Map(m) = extra {
                for (k, v) in m.iter() {
                    labels.insert(k.clone(), v.clone());
                }
            }
        }
        labels
    }

    /// `docker run` (1.9's `Kamal::Commands::App#run`, lib/kamal/commands/app.rb, tag v1.9.3).
    pub fn run(&self, host: &str, version: &str, hostname: &str) -> String {
        let c = self.config();
        let name = self.container_name(version);
        let mut t: Vec<String> = vec![
            "docker run --detach --restart unless-stopped".into(),
            format!("--name {name} --hostname {hostname}"),
            format!("-e KAMAL_CONTAINER_NAME=\"{name}\""),
            format!("-e KAMAL_VERSION=\"{version}\""),
            format!("--env-file {}", self.env_file_path()),
        ];
        let env = self.app.env(host);
        t.extend(argumentize_as("--env", &env.clear_map(), Escaping::V1));
        t.extend(self.health_check_args());
        t.extend(self.app.logging_args());
        t.extend(c.volume_args());
        if let Some(asset_path) = self.asset_path() {
            t.push(format!(
                "--volume $(pwd)/.kamal/assets/volumes/{name}:{asset_path}"
            ));
        }
        t.extend(argumentize_as(
            "--label",
            &Value::map(self.labels()),
            Escaping::V1,
        ));
        let settings = self.app.settings();
        t.extend(optionize_as(&settings.options(), None, Escaping::V1));
        t.push(format!("{}:{version}", c.repository()));
        if let Some(cmd) = settings.cmd() {
            t.push(cmd);
        }
        t.join(" ")
    }

    /// `asset_path` (role's, else root's) for roles running Traefik.
    pub fn asset_path(&self) -> Option<String> {
        if !self.running_traefik() {
            return None;
        }
        self.app.settings().asset_path_setting()
    }

    /// Extract the new version's assets (1.9: a `sleep` helper container and `docker cp`), then
    /// cross-copy with the old version's volume (`$old` in the calling script).
    pub fn extract_and_sync_assets(&self, version: &str) -> Option<String> {
        let path = self.asset_path()?;
        let path = path.split(':').next().unwrap_or(&path).to_string();
        let (p, image) = (
            self.prefix(),
            format!("{}:{version}", self.config().repository()),
        );
        let (x, vol) = (".kamal/assets/extracted", ".kamal/assets/volumes");
        Some(format!(
            "mkdir -p {x}/{p}-{version} && docker stop -t 1 {p}-assets 2> /dev/null || true && docker run --name {p}-assets --detach --rm {image} sleep 1000000 && docker cp -L {p}-assets:{path}/. {x}/{p}-{version} && docker stop -t 1 {p}-assets\n\
             mkdir -p {vol}/{p}-{version} ; cp -rnT {x}/{p}-{version} {vol}/{p}-{version}\n\
             [ -z \"$old\" ] || {{ cp -rnT {x}/{p}-{version} {vol}/{p}-$old || true ; cp -rnT {x}/{p}-$old {vol}/{p}-{version} || true ; }}"
        ))
    }

    /// After the old container stopped: every other version's extracted assets and volume go.
    pub fn clean_up_assets(&self, version: &str) -> Option<String> {
        self.asset_path()?;
        let p = self.prefix();
        Some(format!(
            "find .kamal/assets/extracted -maxdepth 1 -name '{p}-*' ! -name {p}-{version} -exec rm -rf \"{{}}\" + ; find .kamal/assets/volumes -maxdepth 1 -name '{p}-*' ! -name {p}-{version} -exec rm -rf \"{{}}\" +"
        ))
    }

    /// `--filter label=service=S[ --filter label=destination=D] --filter label=role=R` (1.9 leaves the
    /// destination filter out when there is none).
    pub fn filters(&self) -> String {
        let c = self.config();
        let mut f = format!("--filter label=service={}", c.service());
        if let Some(d) = &c.destination {
            f.push_str(&format!(" --filter label=destination={d}"));
        }
        f.push_str(&format!(" --filter label=role={}", self.role().name));
        f
    }

    pub fn list_versions(&self) -> String {
        format!(
            "docker ps {} --format \"{{{{.Names}}}}\" | while read line; do echo ${{line#{}-}}; done",
            self.filters(),
            self.prefix()
        )
    }

    pub fn current_running_version(&self) -> String {
        let c = self.config();
        let latest = format!("{}:{}", c.repository(), c.latest_tag());
        let ps = format!(
            "docker ps --latest --format '\\''{{{{.Names}}}}'\\'' {} --filter status=running --filter status=restarting",
            self.filters()
        );
        format!(
            "sh -c '{ps} --filter ancestor=$(docker image ls --filter reference={latest} --format '\\''{{{{.ID}}}}'\\'') ; {ps}' | head -1 | while read line; do echo ${{line#{}-}}; done",
            self.prefix()
        )
    }

    /// No quotes around the filter in 1.9.
    pub fn container_id_for(&self, version: &str) -> String {
        format!(
            "docker container ls --all --filter name=^{}$ --quiet",
            self.container_name(version)
        )
    }

    pub fn status(&self, version: &str) -> String {
        format!(
            "{} | xargs docker inspect --format '{{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}{{{{.State.Status}}}}{{{{end}}}}'",
            self.container_id_for(version)
        )
    }

    /// `stop_wait_time` (root) becomes `-t`.
    pub fn stop(&self, version: &str) -> String {
        let t = stop_wait_time(self.config())
            .map(|t| format!(" -t {t}"))
            .unwrap_or_default();
        format!("{} | xargs docker stop{t}", self.container_id_for(version))
    }

    pub fn rename(&self, version: &str, new_version: &str) -> String {
        self.app.rename(version, new_version)
    }
}

/// 1.9's audit line: `echo` with the line unquoted.
pub fn audit(service_and_destination: &str, line: &str) -> String {
    format!("echo {line} >> .kamal/{service_and_destination}-audit.log")
}

pub fn lock_dir(service_and_destination: &str) -> String {
    format!(".kamal/locks/{service_and_destination}")
}

/// 1.9 also prunes the containers of its old `healthcheck-S[-D]` checks.
pub fn prune_healthcheck_containers(service_and_destination: &str) -> String {
    format!("docker container prune --force --filter label=service=healthcheck-{service_and_destination}")
}

/// Traefik as Kamal 1.9 runs it (`Kamal::Commands::Traefik`, lib/kamal/commands/traefik.rb, tag v1.9.3).
pub struct Traefik<'a> {
    pub config: &'a Configuration,
}

impl Traefik<'_> {
    fn settings(&self) -> TraefikSettings {
        TraefikSettings::of(self.config)
    }

    pub fn env_file_path() -> &'static str {
        ".kamal/env/traefik/traefik.env"
    }

    pub fn env(&self) -> crate::config::env::Env {
        crate::config::env::Env::from_config(&self.settings().env())
    }

    pub fn image(&self) -> String {
        self.settings()
            .image()
            .unwrap_or_else(|| TRAEFIK_DEFAULT_IMAGE.into())
    }

    pub fn run(&self) -> String {
        let s = self.settings();
        let mut t: Vec<String> =
            vec!["docker run --name traefik --detach --restart unless-stopped".into()];
        if let Some(port) = s.published_port() {
            t.push(format!("--publish {port}:80"));
        }
        t.push("--volume /var/run/docker.sock:/var/run/docker.sock".into());
        t.push(format!("--env-file {}", Self::env_file_path()));
        let env = self.env();
        t.extend(argumentize_as("--env", &env.clear_map(), Escaping::V1));
        t.extend(self.config.logging_args());
        let mut labels = Map::new();
        for (k, v) in [
            (
                "traefik.http.routers.catchall.entryPoints",
                Value::str("http"),
            ),
            (
                "traefik.http.routers.catchall.rule",
                Value::str("PathPrefix(`/`)"),
            ),
            (
                "traefik.http.routers.catchall.service",
                Value::str("unavailable"),
            ),
            ("traefik.http.routers.catchall.priority", Value::Int(1)),
            (
                "traefik.http.services.unavailable.loadbalancer.server.port",
                Value::str("0"),
            ),
        ] {
            labels.set(k, v);
        }
        if let Some(own) = s.labels() {
            for (k, v) in own.iter() {
                labels.insert(k.clone(), v.clone());
            }
        }
        t.extend(argumentize_as("--label", &Value::map(labels), Escaping::V1));
        t.extend(optionize_as(&s.options(), None, Escaping::V1));
        t.push(self.image());
        t.push("--providers.docker".into());
        let mut args: Vec<(String, Value)> = vec![("log.level".into(), Value::str("DEBUG"))];
        if let Some(own) = s.args() {
            for (k, v) in own.iter() {
                let k = k.to_ruby_s();
                match args.iter_mut().find(|(key, _)| *key == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => args.push((k, v.clone())),
                }
            }
        }
        t.extend(optionize_as(&args, Some("="), Escaping::V1));
        t.join(" ")
    }

    pub fn start_or_run(&self) -> String {
        format!("docker container start traefik || {}", self.run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::config;
    use serde_json::json;

    /// The config of the recorded Kamal 1.9.3 run (`kamal-runs/k1-deploy.yml`).
    fn recorded() -> Configuration {
        config(
            &[json!({
                "service": "app", "image": "app",
                "servers": { "web": ["10.213.0.11", "10.213.0.12"] },
                "registry": { "server": "10.213.0.1:5000", "username": "lab", "password": "lab" },
                "builder": { "multiarch": false },
                "healthcheck": { "cmd": "wget -q -O /dev/null http://localhost/up || exit 1" }
            })],
            None,
            "v1",
        )
    }

    const RUN_ID: &str = "02fff38a20beee129706a48cfe24b964";

    #[test]
    fn docker_run_matches_the_recorded_run() {
        let c = recorded();
        let app = AppV1::new(&c, &c.roles[0], RUN_ID);
        assert_eq!(
            app.run("10.213.0.11", "v1", "10.213.0.11-0d7217e25586"),
            r#"docker run --detach --restart unless-stopped --name app-web-v1 --hostname 10.213.0.11-0d7217e25586 -e KAMAL_CONTAINER_NAME="app-web-v1" -e KAMAL_VERSION="v1" --env-file .kamal/env/roles/app-web.env --health-cmd "(wget -q -O /dev/null http://localhost/up || exit 1) && (stat /tmp/kamal-cord/cord > /dev/null || exit 1)" --health-interval "1s" --volume $(pwd)/.kamal/cords/app-web-02fff38a20beee129706a48cfe24b964:/tmp/kamal-cord --log-opt max-size="10m" --label service="app" --label role="web" --label destination --label traefik.http.services.app-web.loadbalancer.server.scheme="http" --label traefik.http.routers.app-web.rule="PathPrefix(\`/\`)" --label traefik.http.routers.app-web.priority="2" --label traefik.http.middlewares.app-web-retry.retry.attempts="5" --label traefik.http.middlewares.app-web-retry.retry.initialinterval="500ms" --label traefik.http.routers.app-web.middlewares="app-web-retry@docker" 10.213.0.1:5000/app:v1"#
        );
        assert_eq!(
            app.tie_cord(),
            "mkdir -p .kamal/cords/app-web-02fff38a20beee129706a48cfe24b964 ; touch .kamal/cords/app-web-02fff38a20beee129706a48cfe24b964/cord"
        );
    }

    #[test]
    fn version_queries_match_the_recorded_run() {
        let c = recorded();
        let app = AppV1::new(&c, &c.roles[0], RUN_ID);
        assert_eq!(
            app.list_versions(),
            r#"docker ps --filter label=service=app --filter label=role=web --format "{{.Names}}" | while read line; do echo ${line#app-web-}; done"#
        );
        assert_eq!(
            app.current_running_version(),
            r#"sh -c 'docker ps --latest --format '\''{{.Names}}'\'' --filter label=service=app --filter label=role=web --filter status=running --filter status=restarting --filter ancestor=$(docker image ls --filter reference=10.213.0.1:5000/app:latest --format '\''{{.ID}}'\'') ; docker ps --latest --format '\''{{.Names}}'\'' --filter label=service=app --filter label=role=web --filter status=running --filter status=restarting' | head -1 | while read line; do echo ${line#app-web-}; done"#
        );
        assert_eq!(
            app.container_id_for("v1"),
            "docker container ls --all --filter name=^app-web-v1$ --quiet"
        );
        assert_eq!(
            app.status("v2"),
            "docker container ls --all --filter name=^app-web-v2$ --quiet | xargs docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}'"
        );
        assert_eq!(
            app.cord("v1"),
            "docker inspect -f '{{ range .Mounts }}{{printf \"%s %s\\n\" .Source .Destination}}{{ end }}' app-web-v1 | awk '$2 == \"/tmp/kamal-cord\" {print $1}'"
        );
        assert_eq!(
            app.stop("v1"),
            "docker container ls --all --filter name=^app-web-v1$ --quiet | xargs docker stop"
        );
    }

    #[test]
    fn assets_follow_kamal_1_9() {
        let c = config(
            &[json!({
                "service": "myapp", "image": "acme/myapp", "servers": { "web": ["1.1.1.1"] },
                "registry": { "username": "u", "password": "p" }, "traefik": {},
                "asset_path": "/rails/public/assets"
            })],
            None,
            "999",
        );
        let app = AppV1::new(&c, &c.roles[0], RUN_ID);
        assert_eq!(
            app.extract_and_sync_assets("999").unwrap(),
            "mkdir -p .kamal/assets/extracted/myapp-web-999 && docker stop -t 1 myapp-web-assets 2> /dev/null || true && docker run --name myapp-web-assets --detach --rm acme/myapp:999 sleep 1000000 && docker cp -L myapp-web-assets:/rails/public/assets/. .kamal/assets/extracted/myapp-web-999 && docker stop -t 1 myapp-web-assets\n\
             mkdir -p .kamal/assets/volumes/myapp-web-999 ; cp -rnT .kamal/assets/extracted/myapp-web-999 .kamal/assets/volumes/myapp-web-999\n\
             [ -z \"$old\" ] || { cp -rnT .kamal/assets/extracted/myapp-web-999 .kamal/assets/volumes/myapp-web-$old || true ; cp -rnT .kamal/assets/extracted/myapp-web-$old .kamal/assets/volumes/myapp-web-999 || true ; }"
        );
        assert_eq!(
            app.clean_up_assets("999").unwrap(),
            "find .kamal/assets/extracted -maxdepth 1 -name 'myapp-web-*' ! -name myapp-web-999 -exec rm -rf \"{}\" + ; find .kamal/assets/volumes -maxdepth 1 -name 'myapp-web-*' ! -name myapp-web-999 -exec rm -rf \"{}\" +"
        );
        assert!(app.run("1.1.1.1", "999", "h").contains("--log-opt max-size=\"10m\" --volume $(pwd)/.kamal/assets/volumes/myapp-web-999:/rails/public/assets --label service="));
    }

    #[test]
    fn traefik_boot_matches_the_recorded_run() {
        let c = recorded();
        assert_eq!(
            Traefik { config: &c }.start_or_run(),
            r#"docker container start traefik || docker run --name traefik --detach --restart unless-stopped --publish 80:80 --volume /var/run/docker.sock:/var/run/docker.sock --env-file .kamal/env/traefik/traefik.env --log-opt max-size="10m" --label traefik.http.routers.catchall.entryPoints="http" --label traefik.http.routers.catchall.rule="PathPrefix(\`/\`)" --label traefik.http.routers.catchall.service="unavailable" --label traefik.http.routers.catchall.priority="1" --label traefik.http.services.unavailable.loadbalancer.server.port="0" traefik:v2.11 --providers.docker --log.level="DEBUG""#
        );
    }

    #[test]
    fn a_destination_worker_role_and_traefik_options() {
        let c = config(
            &[
                json!({
                    "service": "app", "image": "acme/app",
                    "servers": {
                        "web": { "hosts": ["1.1.1.1"], "labels": { "team": "a" } },
                        "workers": { "hosts": ["2.2.2.2"], "cmd": "bin/jobs", "env": { "clear": { "QUEUE": "é" } } }
                    },
                    "registry": { "username": "u", "password": ["KAMAL_REGISTRY_PASSWORD"] },
                    "env": { "clear": { "HOST": "x" }, "secret": ["DB_PASSWORD"] },
                    "stop_wait_time": 20,
                    "traefik": { "publish": false, "image": "traefik:v2.10", "args": { "accesslog": true, "log.level": "INFO" },
                                 "options": { "memory": "512m" }, "labels": { "traefik.enable": "true" } }
                }),
                json!({ "servers": { "web": { "hosts": ["1.1.1.1"] } } }),
            ],
            Some("staging"),
            "abc",
        );
        let worker = c.roles.iter().find(|r| r.name == "workers").unwrap();
        let app = AppV1::new(&c, worker, RUN_ID);
        assert!(!app.running_traefik());
        assert_eq!(
            app.run("2.2.2.2", "abc", "2.2.2.2-aaaaaaaaaaaa"),
            r#"docker run --detach --restart unless-stopped --name app-workers-staging-abc --hostname 2.2.2.2-aaaaaaaaaaaa -e KAMAL_CONTAINER_NAME="app-workers-staging-abc" -e KAMAL_VERSION="abc" --env-file .kamal/env/roles/app-workers-staging.env --env HOST="x" --env QUEUE="\u00E9" --log-opt max-size="10m" --label service="app" --label role="workers" --label destination="staging" acme/app:abc bin/jobs"#
        );
        assert_eq!(
            app.list_versions(),
            r#"docker ps --filter label=service=app --filter label=destination=staging --filter label=role=workers --format "{{.Names}}" | while read line; do echo ${line#app-workers-staging-}; done"#
        );
        assert_eq!(app.stop("abc"), "docker container ls --all --filter name=^app-workers-staging-abc$ --quiet | xargs docker stop -t 20");
        let web = AppV1::new(&c, &c.roles[0], RUN_ID);
        assert!(web.running_traefik());
        assert!(web.run("1.1.1.1", "abc", "h").contains("--health-cmd \"(curl -f http://localhost:3000/up || exit 1) && (stat /tmp/kamal-cord/cord > /dev/null || exit 1)\" --health-interval \"1s\" --volume $(pwd)/.kamal/cords/app-web-staging-02fff38a20beee129706a48cfe24b964:/tmp/kamal-cord"));
        assert!(web.run("1.1.1.1", "abc", "h").ends_with("--label traefik.http.routers.app-web-staging.middlewares=\"app-web-staging-retry@docker\" --label team=\"a\" acme/app:abc"));
        assert_eq!(
            Traefik { config: &c }.run(),
            r#"docker run --name traefik --detach --restart unless-stopped --volume /var/run/docker.sock:/var/run/docker.sock --env-file .kamal/env/traefik/traefik.env --log-opt max-size="10m" --label traefik.http.routers.catchall.entryPoints="http" --label traefik.http.routers.catchall.rule="PathPrefix(\`/\`)" --label traefik.http.routers.catchall.service="unavailable" --label traefik.http.routers.catchall.priority="1" --label traefik.http.services.unavailable.loadbalancer.server.port="0" --label traefik.enable="true" --memory "512m" traefik:v2.10 --providers.docker --log.level="INFO" --accesslog"#
        );
        assert_eq!(
            crate::commands::lock::acquire_at(&lock_dir("app-staging"), "x")
                .split(" && ")
                .next(),
            Some("mkdir .kamal/locks/app-staging")
        );
        assert_eq!(web.extract_and_sync_assets("abc"), None);
        assert_eq!(web.clean_up_assets("abc"), None);
        assert_eq!(
            crate::commands::lock::release_at(&lock_dir("app-staging")),
            "rm .kamal/locks/app-staging/details && rm -r .kamal/locks/app-staging"
        );
        assert_eq!(
            prune_healthcheck_containers("app-staging"),
            "docker container prune --force --filter label=service=healthcheck-app-staging"
        );
    }
}
