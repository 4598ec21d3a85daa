//! `build push` (`lib/kamal/cli/build.rb#push`, `lib/kamal/cli/build/clone.rb`, Kamal 2.12.0): check the
//! local tools, log in to the registry, `pre-build`, prepare the git clone the image is built from, make
//! sure the builder exists, then build and push with the output streamed line by line. All of it runs
//! on this machine, before anything touches a server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use regex::Regex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::hooks::{run_hook, HookContext};
use crate::commands::builder::{
    docker_arch, local_registry_setup, Builder, Clone, ENSURE_LOCAL_TOOLS,
};
use crate::commands::builder_v1::BuilderV1;
use crate::commands::registry;
use crate::error::{Error, ErrorKind, Result};
use crate::output::{uuid, Stream};
use crate::runner::failure::failure_text;
use crate::runner::shell::Shell;

/// What a local command left.
struct Local {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Local {
    fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// SSHKit's `Command::Failed` text.
    fn failure(&self, first_word: &str) -> String {
        failure_text(
            first_word,
            self.status.unwrap_or(-1),
            &self.stdout,
            &self.stderr,
        )
    }
}

#[derive(Default)]
struct LocalOptions<'o> {
    env: Vec<(String, String)>,
    cwd: Option<&'o Path>,
    /// The build: shown whatever the verbosity, each line as it arrives.
    streamed: bool,
    /// Kamal's `verbosity: :debug` (shown with -v only).
    debug: bool,
}

fn git_output(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The build of one run.
pub struct Build<'r, 'a> {
    sh: Shell<'r, 'a>,
    /// For the pre-build hook.
    hooks: HookContext<'r, 'a>,
}

impl<'r, 'a> Build<'r, 'a> {
    pub fn new(hooks: HookContext<'r, 'a>) -> Self {
        Build {
            sh: hooks.sh,
            hooks,
        }
    }

    /// Runs a command line on this machine through `sh -c`, as SSHKit's local backend does.
    async fn local(&self, shown: &str, command: &str, o: LocalOptions<'_>) -> Result<Local> {
        let id = uuid();
        if o.streamed {
            self.sh.io.output.build_running(&id, shown);
        } else {
            self.sh.io.output.running(&id, shown, "localhost", o.debug);
        }
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .envs(o.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = o.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::runtime(format!("Could not run `{shown}`: {e}")))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let err_task = tokio::spawn(async move {
            let mut buf = String::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_string(&mut buf).await;
            }
            buf
        });
        let work = async {
            let mut out = String::new();
            if let Some(stdout) = stdout {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if o.streamed {
                        self.sh.io.output.build_line(&id, &line);
                    }
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            (out, child.wait().await)
        };
        let (stdout, status) = tokio::select! {
            r = work => r,
            _ = self.sh.io.cancel.cancelled() => {
                return Err(Error::new(ErrorKind::Interrupted, format!("Interrupted while running `{shown}`")));
            }
        };
        let status = status.map_err(|e| Error::runtime(e.to_string()))?.code();
        let stderr = err_task.await.unwrap_or_default();
        let secs = started.elapsed().as_secs_f64();
        if o.streamed {
            self.sh.io.output.build_finished(&id, secs, status);
        } else {
            let output = &self.sh.io.output;
            output.command_output(&id, "localhost", Stream::Stdout, &stdout);
            output.command_output(&id, "localhost", Stream::Stderr, &stderr);
            output.finished(&id, secs, status, "localhost", o.debug);
        }
        Ok(Local {
            status,
            stdout,
            stderr,
        })
    }

    /// A local command that must succeed (SSHKit's `execute`), logged as `shown` (which hides what
    /// must not be printed).
    async fn execute_local_as(&self, shown: &str, command: &str) -> Result<Local> {
        let out = self.local(shown, command, LocalOptions::default()).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(Error::new(
                ErrorKind::CommandFailed,
                out.failure(first_word(command)),
            ))
        }
    }

    async fn execute_local(&self, command: &str) -> Result<Local> {
        self.execute_local_as(command, command).await
    }

    /// `docker login` on this machine, logged with the credentials hidden.
    pub async fn login_locally(&self) -> Result<()> {
        let (user, password) = self.sh.credentials()?;
        let server = self.sh.config.registry().server;
        let login = registry::login(server.as_deref(), &user, &password);
        self.execute_local_as(&registry::login_redacted(server.as_deref()), &login)
            .await
            .map(|_| ())
    }

    /// `build push`, then the image is in the registry under `IMG:V` and `IMG:latest[-D]`.
    pub async fn push(&self) -> Result<()> {
        if self.sh.config.major == crate::config::KamalMajor::V1 {
            return self.build_push_v1().await;
        }
        let c = self.sh.config;
        let tools = self
            .local(
                ENSURE_LOCAL_TOOLS,
                ENSURE_LOCAL_TOOLS,
                LocalOptions::default(),
            )
            .await?;
        if !tools.success() {
            let text = format!("{}{}", tools.stdout, tools.stderr);
            let message =
                if text.contains("command not found") || text.contains("docker: not found") {
                    "Docker is not installed locally"
                } else {
                    "Docker buildx plugin is not installed locally"
                };
            return Err(Error::new(ErrorKind::Dependency, message));
        }
        let remote_builder = c.builder().remote().is_some();
        let arch = if remote_builder {
            let info = self
                .execute_local("docker info --format '{{.Architecture}}'")
                .await?;
            Some(docker_arch(&info.stdout))
        } else {
            None
        };
        let builder = Builder::new(c, arch.as_deref())?;

        if builder.login_to_registry_locally() {
            match c.registry().local_port() {
                Some(port) => {
                    self.execute_local(&local_registry_setup(&port.to_string()))
                        .await?;
                }
                None => self.login_locally().await?,
            }
        } else if c.registry().local() {
            return Err(Error::new(
                ErrorKind::Build,
                "A local registry with a remote builder needs an SSH port forward to the builder, which kamal_rs does not open yet: push to a registry the builder can reach",
            ));
        }

        run_hook(&self.hooks, "pre-build", &self.sh.sel.hosts, &[], false).await?;

        let build_dir = self.prepare_build_directory(false).await?;

        if let Some(check) = builder.inspect_builder() {
            let out = self.local(&check, &check, LocalOptions::default()).await?;
            if !out.success() {
                let failure = out.failure(first_word(&check));
                let missing =
                    Regex::new("context not found|no builder|no compatible builder|does not exist")
                        .unwrap();
                if !missing.is_match(&failure) {
                    return Err(Error::new(ErrorKind::CommandFailed, failure));
                }
                self.sh
                    .io
                    .output
                    .warn_line("Missing compatible builder, so creating a new one first");
                if let Some(remove) = builder.remove() {
                    if let Err(e) = self.execute_local(&remove).await {
                        let gone =
                            Regex::new("context not found|no builder|does not exist").unwrap();
                        if !gone.is_match(&e.message) {
                            return Err(e);
                        }
                    }
                }
                if let Some(create) = builder.create() {
                    self.execute_local(&create).await?;
                }
            }
        }

        let (command, shown) = builder.push("registry", self.sh.options.no_cache);
        let env = builder.push_env();
        self.run_build(
            &builder.dockerfile(),
            &builder.secret_names(),
            (command, shown),
            env,
            build_dir,
        )
        .await
    }

    /// The directory the build runs in: a clean clone of HEAD unless `builder.context` is set (then
    /// the working tree), with Kamal's warnings about uncommitted changes.
    async fn prepare_build_directory(&self, v1: bool) -> Result<Option<PathBuf>> {
        let c = self.sh.config;
        let root = git_output(&["rev-parse", "--show-toplevel"]);
        let uncommitted = root
            .as_ref()
            .and_then(|_| git_output(&["status", "--porcelain"]))
            .unwrap_or_default();
        match (&root, c.builder_uses_git_clone()) {
            (Some(root), true) => {
                if !uncommitted.is_empty() {
                    self.sh.io.output.warn(&format!(
                        "Building from a local git clone, so ignoring these uncommitted changes:\n {uncommitted}"
                    ));
                }
                let pwd = std::env::current_dir().map_err(|e| Error::runtime(e.to_string()))?;
                let mut clone =
                    Clone::new(&c.service(), &pwd, Path::new(root), &std::env::temp_dir());
                clone.v1 = v1;
                self.prepare_clone(&clone).await?;
                Ok(Some(clone.build_directory))
            }
            _ => {
                if !uncommitted.is_empty() {
                    self.sh.io.output.warn(&format!(
                        "Building with uncommitted changes:\n {uncommitted}"
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Kamal 1.9's `build push` (tag v1.9.3): its builders, no `--output`, and the login already done by
    /// the deploy's first step.
    async fn build_push_v1(&self) -> Result<()> {
        let c = self.sh.config;
        let builder = BuilderV1::new(c)?;
        let tools = builder.ensure_local_tools();
        let out = self.local(tools, tools, LocalOptions::default()).await?;
        if !out.success() {
            let text = format!("{}{}", out.stdout, out.stderr);
            let message = if text.contains("buildx") {
                "Docker buildx plugin is not installed locally"
            } else {
                "Docker is not installed locally"
            };
            return Err(Error::new(ErrorKind::Dependency, message));
        }
        run_hook(&self.hooks, "pre-build", &self.sh.sel.hosts, &[], false).await?;
        let build_dir = self.prepare_build_directory(true).await?;
        if let Some(check) = builder.inspect_builder() {
            let out = self.local(&check, &check, LocalOptions::default()).await?;
            if !out.success() {
                self.sh
                    .io
                    .output
                    .warn_line("Missing compatible builder, so creating a new one first");
                if let Some(create) = builder.create() {
                    self.execute_local(&create).await?;
                }
            }
        }
        let push = builder.push(self.sh.options.no_cache);
        self.run_build(
            &builder.dockerfile(),
            &builder.secret_names(),
            push,
            Vec::new(),
            build_dir,
        )
        .await
    }

    /// The build itself, in `build_dir` (else here), with the builder secrets only in its environment
    /// and its output streamed. The Dockerfile is looked for in the app's directory, as Kamal does,
    /// even for a clone build.
    async fn run_build(
        &self,
        dockerfile: &str,
        secret_names: &[String],
        (command, shown): (String, String),
        mut env: Vec<(String, String)>,
        build_dir: Option<PathBuf>,
    ) -> Result<()> {
        if !Path::new(dockerfile).exists() {
            return Err(Error::new(
                ErrorKind::Build,
                format!("Missing {dockerfile}"),
            ));
        }
        for name in secret_names {
            env.push((name.clone(), self.sh.config.secrets.get(name)?));
        }
        let options = LocalOptions {
            env,
            cwd: build_dir.as_deref(),
            streamed: true,
            debug: false,
        };
        let out = self.local(&shown, &command, options).await?;
        if !out.success() {
            return Err(Error::new(
                ErrorKind::CommandFailed,
                out.failure(first_word(&command)),
            ));
        }
        Ok(())
    }

    /// A clean clone of the committed HEAD to build from: cloned once, then reset on later runs; a
    /// clone that cannot be used is deleted and cloned again, once.
    async fn prepare_clone(&self, clone: &Clone) -> Result<()> {
        let attempt = async {
            match self.clone_repo(clone).await {
                Ok(()) => {}
                Err(e)
                    if e.message
                        .contains("already exists and is not an empty directory") =>
                {
                    self.sh.io.output.info(&format!(
                        "Resetting local clone as `{}` already exists...",
                        clone.build_directory.display()
                    ));
                    let revision = git_output(&["rev-parse", "HEAD"]).unwrap_or_default();
                    for step in clone.reset_steps(&revision) {
                        self.execute_local(&step).await.map_err(|e| {
                            Error::new(
                                ErrorKind::Build,
                                format!("Failed to clone repo: {}", e.message),
                            )
                        })?;
                    }
                }
                Err(e) if e.kind == ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Build,
                        format!("Failed to clone repo: {}", e.message),
                    ))
                }
            }
            self.validate_clone(clone).await
        };
        match attempt.await {
            Err(e) if e.kind == ErrorKind::Build => {
                self.sh.io.output.error(&format!(
                    "Error preparing clone: {}, deleting and retrying...",
                    e.message
                ));
                let _ = std::fs::remove_dir_all(&clone.clone_directory);
                self.clone_repo(clone).await?;
                self.validate_clone(clone).await
            }
            other => other,
        }
    }

    async fn clone_repo(&self, clone: &Clone) -> Result<()> {
        self.sh.io.output.info(&format!(
            "Cloning repo into build directory `{}`...",
            clone.build_directory.display()
        ));
        std::fs::create_dir_all(&clone.clone_directory)
            .map_err(|e| Error::runtime(e.to_string()))?;
        self.execute_local(&clone.clone_command()).await.map(|_| ())
    }

    async fn validate_clone(&self, clone: &Clone) -> Result<()> {
        let dir = clone.build_directory.display();
        let failed = |e: Error| {
            Error::new(
                ErrorKind::Build,
                format!("Failed to validate clone: {}", e.message),
            )
        };
        let status = self.execute_local(&clone.status()).await.map_err(failed)?;
        let status = status.stdout.trim();
        if !status.is_empty() {
            return Err(Error::new(
                ErrorKind::Build,
                format!("Clone in {dir} is dirty, {status}"),
            ));
        }
        let revision = self
            .execute_local(&clone.revision())
            .await
            .map_err(failed)?;
        let revision = revision.stdout.trim();
        let expected = git_output(&["rev-parse", "HEAD"]).unwrap_or_default();
        if revision != expected {
            return Err(Error::new(
                ErrorKind::Build,
                format!("Clone in {dir} is not on the correct revision, expected `{expected}` but got `{revision}`"),
            ));
        }
        Ok(())
    }
}

fn first_word(command: &str) -> &str {
    command.split_whitespace().next().unwrap_or_default()
}
