require "rbconfig"
require "shellwords"

module KamalRs
  # `kamal-rs` runs deploy, redeploy, rollback, config and (1.x) env push itself; every other Kamal
  # command (`kamal-rs app logs`, `kamal-rs accessory boot db`, `kamal-rs lock release`...) is handed to
  # Ruby Kamal with the same arguments, so one executable covers the whole command line. The process
  # becomes Kamal's (exec): its output, its exit status, its Ctrl-C.
  module HandOver
    # Kamal 2.12's commands that kamal_rs leaves to Kamal (`kamal help`), and 1.9's extra ones.
    KAMAL_COMMANDS = %w[accessory app audit build details docs init lock proxy prune registry remove secrets
                        server setup upgrade].freeze
    KAMAL_1_COMMANDS = %w[downgrade envify traefik].freeze

    # Set for the Kamal it starts: a `kamal` that turns out to be kamal-rs again stops there.
    GUARD = "KAMAL_RS_HANDED_OVER".freeze

    # Which Kamal: KAMAL_RS_KAMAL (a command line, say "bin/kamal"), else the kamal gem Ruby can load
    # (the bundle's under `bundle exec`), else `kamal` on PATH.
    def self.kamal_command(env = ENV)
      explicit = env["KAMAL_RS_KAMAL"].to_s
      return Shellwords.split(explicit) unless explicit.empty?

      begin
        [ RbConfig.ruby, Gem.bin_path("kamal", "kamal") ]
      rescue LoadError, Gem::Exception
        path = on_path("kamal", env)
        path && [ path ]
      end
    end

    # Replaces this process with Kamal running `argv`.
    def self.exec(argv, env = ENV)
      if env[GUARD]
        raise KamalNotFound, "`kamal #{argv.join(" ")}` came back to kamal-rs: the `kamal` it handed over to " \
                             "is kamal-rs itself. Set KAMAL_RS_KAMAL to Ruby Kamal's executable"
      end
      command = kamal_command(env)
      unless command
        raise KamalNotFound, "`#{argv.first}` is one of Kamal's commands, which kamal-rs hands to Ruby Kamal, " \
                             "and Kamal is not installed: add `gem \"kamal\"` to the Gemfile (or set KAMAL_RS_KAMAL). " \
                             "kamal-rs itself runs: #{Cli::COMMANDS.keys.join(", ")}"
      end
      $stdout.flush
      $stderr.flush
      program, *args = command
      Kernel.exec({ GUARD => "1" }, [ program, program ], *args, *argv)
    end

    def self.on_path(name, env)
      env["PATH"].to_s.split(File::PATH_SEPARATOR).each do |dir|
        path = File.join(dir, name)
        return path if File.file?(path) && File.executable?(path)
      end
      nil
    end
    private_class_method :on_path
  end
end
