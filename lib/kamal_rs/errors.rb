module KamalRs
  # Every failure kamal_rs raises is a KamalRs::Error. Names follow Kamal's (Kamal::Cli::LockError →
  # KamalRs::LockError); the messages are Kamal's.
  class Error < StandardError; end

  # The config is invalid (Kamal's Kamal::ConfigurationError).
  class ConfigurationError < Error; end

  # Where Kamal raises a plain ArgumentError (for example "You must specify a destination").
  class ArgumentError < Error; end

  # Where Kamal raises a plain RuntimeError (for example "Configuration file not found in ...").
  class RuntimeError < Error; end

  # A hook exited non-zero.
  class HookError < Error; end

  # The deploy lock is held by someone else, or waiting for it timed out.
  class LockError < Error; end

  # A new container did not boot.
  class BootError < Error; end

  # A new container did not become healthy, or the primary role's barrier closed.
  class HealthcheckError < Error; end

  # A remote command failed (Kamal reports SSHKit::Command::Failed).
  class CommandFailed < Error; end

  # A host could not be reached over SSH.
  class ConnectionError < Error; end

  # Docker or its buildx plugin is missing on this machine (Kamal's Kamal::Cli::DependencyError).
  class DependencyError < Error; end

  # The image could not be built: no Dockerfile, or a build clone that cannot be prepared.
  class BuildError < Error; end

  # The run was stopped (Ctrl-C, Thread#raise, Timeout) after releasing the lock.
  class Interrupted < Error; end
end
