module KamalRs
  # Every failure kamal_rs raises is a KamalRs::Error; the messages are Kamal's. Each class also knows
  # the class Kamal raises for the same failure (`kamal_name`): the command line prints that one, so
  # `kamal-rs` prints the `ERROR (...)` line `kamal` prints.
  class Error < StandardError
    def self.kamal_name
      name
    end
  end

  def self.error_class(kamal_name)
    Class.new(Error) { define_singleton_method(:kamal_name) { kamal_name } }
  end
  private_class_method :error_class

  # The config is invalid.
  ConfigurationError = error_class("Kamal::ConfigurationError")

  # Where Kamal raises a plain ArgumentError (for example "You must specify a destination").
  ArgumentError = error_class("ArgumentError")

  # Where Kamal raises a plain RuntimeError (for example "Configuration file not found in ...").
  RuntimeError = error_class("RuntimeError")

  # A hook exited non-zero.
  HookError = error_class("Kamal::Cli::HookError")

  # The deploy lock is held by someone else, or waiting for it timed out.
  LockError = error_class("Kamal::Cli::LockError")

  # A new container did not boot.
  BootError = error_class("Kamal::Cli::BootError")

  # A new container did not become healthy, or the primary role's barrier closed.
  HealthcheckError = error_class("Kamal::Cli::Healthcheck::Error")

  # A remote command failed.
  CommandFailed = error_class("SSHKit::Command::Failed")

  # A host could not be reached over SSH (Kamal names Net::SSH's or Errno's class; kamal_rs says why in
  # the message instead).
  ConnectionError = error_class("KamalRs::ConnectionError")

  # Docker or its buildx plugin is missing on this machine.
  DependencyError = error_class("Kamal::Cli::DependencyError")

  # The image could not be built: no Dockerfile, or a build clone that cannot be prepared.
  BuildError = error_class("Kamal::Cli::Build::BuildError")

  # A command kamal-rs hands to Ruby Kamal, and no Kamal to hand it to.
  KamalNotFound = error_class("KamalRs::KamalNotFound")

  # A bug in kamal_rs (a panic in its core): the run stopped as after any failure, lock released.
  InternalError = error_class("KamalRs::InternalError")

  # The run was stopped (Ctrl-C, SIGTERM, Thread#raise, Timeout) after releasing the lock.
  Interrupted = error_class("Interrupt")
end
