//! One SSH round trip per (host, role) boot. Kamal sends each of these commands on its own; here they
//! run in Kamal's order inside one remote script, with the same effect:
//!
//! 1. stale containers: every running version of the role except the current one is stopped;
//! 2. a container already named for the new version is renamed `V_replaced_<hex>` (audited);
//! 3. the current (old) version is read again;
//! 4. assets are extracted and synced (proxy roles with `asset_path`);
//! 5. `Booted app version V` is audited, the env file written (mode 0600, contents on stdin: secrets
//!    never appear in a command line), and the container started with Kamal's `docker run`;
//! 6. proxy roles: kamal-proxy deploys it (health-gated), then the old container is stopped.
//!
//! Progress comes back as `kamal-rs:` marker lines on stdout; a failure exits with a code naming the step.

use crate::commands::app::App;
use crate::commands::auditor::Auditor;
use crate::commands::single_quote;

pub const MARK: &str = "kamal-rs:";
pub const EXIT_ENV: i32 = 70;
pub const EXIT_RUN: i32 = 72;
pub const EXIT_ENDPOINT: i32 = 73;
pub const EXIT_PROXY: i32 = 74;
pub const EXIT_ASSETS: i32 = 75;
/// The tag / prune / lock release folded after a run's only boot failed (the boot itself succeeded).
pub const EXIT_TAG: i32 = 76;
/// Before the boot, in the per-host rollout's first script: the lock was held by someone else, the
/// pull (or its label check) failed, kamal-proxy could not be booted.
pub const EXIT_LOCKED: i32 = 77;
pub const EXIT_PULL: i32 = 78;
pub const EXIT_PROXY_BOOT: i32 = 79;
/// Ctrl-C reached the script (SIGTERM) before its boot began.
pub const EXIT_INTERRUPTED: i32 = 130;
const CID: &str = "KAMALRSCONTAINERID";

pub struct BootScript<'a> {
    pub app: &'a App<'a>,
    pub auditor: &'a Auditor<'a>,
    pub host: &'a str,
    pub version: &'a str,
    pub recorded_at: &'a str,
    pub hostname: &'a str,
    pub replaced_suffix: &'a str,
    /// Sizes of what follows on stdin: the env file, then (custom TLS) the certificate and the key.
    pub env_len: usize,
    pub tls_lens: Option<(usize, usize)>,
    /// Error pages to write (`error_pages_path`): (file name, contents), on this host's first role.
    pub error_pages: &'a [(String, Vec<u8>)],
    /// The role's container list is already being read, in the background, into the file
    /// `$ps_out` (`BootScript::list_in_background`), while the lock-first rollout pulls.
    pub listed_in_background: bool,
}

/// Starts reading the role's containers (`docker ps -a`) in the background into a temporary file, for
/// a boot script built with `listed_in_background`: the list does not depend on the pull, and the
/// lock is already held, so the two overlap.
pub fn list_in_background(app: &App<'_>) -> String {
    format!(
        "ps_out=$(mktemp) || exit {EXIT_PULL}; {} >\"$ps_out\" </dev/null & ps_pid=$!",
        app.containers_with_state()
    )
}

impl BootScript<'_> {
    pub fn build(&self) -> String {
        let app = self.app;
        let role = app.role.name.as_str();
        let v = self.version;
        let prefix = app.container_prefix();
        let stop_t = app
            .stop_timeout()
            .map(|t| format!(" -t {t}"))
            .unwrap_or_default();
        // Kamal stops `$(docker container ls --all --filter 'name=^NAME$' --quiet)`: the container of
        // exactly that name, which is what `docker stop NAME` stops, in one docker call instead of two.
        let stop_version = |var: &str| format!("docker stop{stop_t} \"{prefix}-${{{var}}}\"");
        let env_dir = app.env_directory();
        let env_file = app.env_file_path();
        let replaced = format!("{v}_replaced_{}", self.replaced_suffix);
        let current = app.current_version_into_old();
        let mut s: Vec<String> = Vec::new();
        s.push(if self.listed_in_background {
            "wait $ps_pid; containers=$(cat \"$ps_out\"); rm -f \"$ps_out\"".to_string()
        } else {
            format!("containers=$({})", app.containers_with_state())
        });
        // With exactly one running (or restarting) container, that one is the current version whatever
        // its image, as both of Kamal's queries return it; with none, there is none. Only several
        // running containers need the `latest`-image preference.
        s.push(format!(
            "live=$(echo \"$containers\" | while read n st; do case \"$st\" in running|restarting) echo \"$n\";; esac; done); \
             nlive=$(echo \"$live\" | grep -c .); case $nlive in 0) old= ;; 1) old=${{live#{prefix}-}} ;; *) {current} ;; esac"
        ));
        // Running versions other than the current one are stale (Kamal's `docker ps` without `-a`
        // lists running, restarting and paused containers).
        s.push(format!(
            "for stale in $(echo \"$containers\" | while read n st; do case \"$st\" in running|restarting|paused) echo \"${{n#{prefix}-}}\";; esac; done); do [ \"$stale\" = \"$old\" ] && continue; echo \"{MARK}stale $stale\"; {} >/dev/null 2>&1; done",
            stop_version("stale")
        ));
        // After a rename the current version is read again only where Kamal's queries could answer
        // differently: with one running container it is still that one, under its new name if renamed.
        s.push(format!(
            "if echo \"$containers\" | grep -q \"^{prefix}-{v} \"; then echo \"{MARK}renamed {replaced}\"; {} && {} && \
             if [ \"$nlive\" -gt 1 ]; then {current}; elif [ \"$old\" = \"{v}\" ]; then old={replaced}; fi; fi",
            self.auditor.record(self.recorded_at, Some(role), &format!("Renaming container {v} to {replaced}")),
            app.rename(v, &replaced)
        ));
        s.push(format!("echo \"{MARK}old $old\""));
        if let Some(asset_path) = app.asset_path() {
            s.push(self.assets(asset_path.split(':').next().unwrap_or(&asset_path)));
        }
        s.push(format!(
            "{} || exit {EXIT_RUN}",
            self.auditor.record(
                self.recorded_at,
                Some(role),
                &format!("Booted app version {v}")
            )
        ));
        // stdin carries the env file, then the TLS certificate and key: `head -c N` never reads past N.
        s.push(format!(
            "mkdir -p {env_dir} && (umask 077 && head -c {} > {env_file}) && chmod 600 {env_file} || exit {EXIT_ENV}",
            self.env_len
        ));
        let sd = app.config.service_and_destination();
        if let Some((cert_len, key_len)) = self.tls_lens {
            let dir = format!(".kamal/proxy/apps-config/{sd}/tls/{role}");
            s.push(format!("echo \"{MARK}tls\"; mkdir -p {dir} && head -c {cert_len} > {dir}/cert.pem && head -c {key_len} > {dir}/key.pem && chmod 644 {dir}/cert.pem {dir}/key.pem || exit {EXIT_ENV}"));
        }
        if !self.error_pages.is_empty() {
            let dir = format!(".kamal/proxy/apps-config/{sd}/error_pages");
            let mut w = vec![format!("mkdir -p {dir}/{v}")];
            for (name, body) in self.error_pages {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD.encode(body);
                w.push(format!(
                    "printf '%s' '{b64}' | base64 -d > {dir}/{v}/{name}"
                ));
            }
            w.push(format!("chmod -R 700 {dir}/{v}"));
            s.push(format!("{{ {}; }} || exit {EXIT_ENV}", w.join(" && ")));
        }
        // `docker run --detach` prints the new container's ID: its first 12 characters are what Kamal
        // reads back with `docker container ls --all --filter 'name=^NAME$' --quiet`.
        s.push(format!(
            "echo \"{MARK}run\"; cid=$({}) || {{ rc=$?; echo \"{MARK}failed $rc\"; exit {EXIT_RUN}; }}; cid=$(printf %.12s \"$cid\")",
            app.run(self.host, v, self.hostname)
        ));
        if app.running_proxy() {
            s.push(format!(
                "[ -n \"$cid\" ] || exit {EXIT_ENDPOINT}; echo \"{MARK}container $cid\""
            ));
            // The container ID is only known on the host: Kamal's `--target="<id>:<port>"`, filled in there.
            let deploy = app.proxy_deploy(CID, v).replace(CID, "${cid}");
            s.push(format!(
                "{deploy} || {{ rc=$?; echo \"{MARK}failed $rc\"; exit {EXIT_PROXY}; }}"
            ));
            s.push(format!("echo \"{MARK}healthy\""));
            s.push(format!(
                "[ -z \"$old\" ] || {{ echo \"{MARK}stopping $old\"; {} >/dev/null 2>&1; }}",
                stop_version("old")
            ));
            if app.asset_path().is_some() {
                s.push(self.assets_cleanup());
            }
            if app.config.get("error_pages_path").is_some() {
                s.push(format!(
                    "find .kamal/proxy/apps-config/{}/error_pages -mindepth 1 -maxdepth 1 ! -name {v} -exec rm -rf {{}} +",
                    app.config.service_and_destination()
                ));
            }
            s.push(format!("echo \"{MARK}done\""));
        } else {
            s.push(format!("echo \"{MARK}started\""));
        }
        s.join("\n")
    }

    /// Extract the new version's assets from its image, and cross-copy with the old version's.
    fn assets(&self, path: &str) -> String {
        let app = self.app;
        let role = app.role.name.as_str();
        let v = self.version;
        let sd = app.config.service_and_destination();
        let base = format!(".kamal/apps/{sd}/assets");
        let helper = format!("{}-assets", app.container_prefix());
        let image = format!("{}:{v}", app.config.repository());
        format!(
            "{{ mkdir -p {base}/extracted/{role}-{v} && docker container rm {helper} 2> /dev/null || true && docker container create --name {helper} {image} && docker container cp -L {helper}:{path}/. {base}/extracted/{role}-{v} && docker container rm {helper}; }} >/dev/null || exit {EXIT_ASSETS}\n\
             mkdir -p {base}/volumes/{role}-{v} ; cp -rnT {base}/extracted/{role}-{v} {base}/volumes/{role}-{v}\n\
             [ -z \"$old\" ] || {{ cp -rnT {base}/extracted/{role}-{v} {base}/volumes/{role}-$old || true ; cp -rnT {base}/extracted/{role}-$old {base}/volumes/{role}-{v} || true ; }}"
        )
    }

    fn assets_cleanup(&self) -> String {
        let role = self.app.role.name.as_str();
        let v = self.version;
        let base = format!(
            ".kamal/apps/{}/assets",
            self.app.config.service_and_destination()
        );
        format!(
            "find {base}/extracted -maxdepth 1 -name {} ! -name {role}-{v} -exec rm -rf \"{{}}\" + ; find {base}/volumes -maxdepth 1 -name {} ! -name {role}-{v} -exec rm -rf \"{{}}\" +",
            single_quote(&format!("{role}-*")),
            single_quote(&format!("{role}-*"))
        )
    }
}
