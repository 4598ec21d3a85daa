require "json"
require "shellwords"

module KamalRs
  # Reads `.kamal/secrets-common`, then `.kamal/secrets` (or `.kamal/secrets.<destination>`), to the
  # values Kamal 2 deploys (`Kamal::Secrets#to_h`, lib/kamal/secrets.rb in Kamal 2.12.0), before a
  # run touches any host: a secrets file that makes Kamal stop makes kamal-rs stop first.
  #
  # Where the app's Kamal 2 can be loaded (a Rails app that deploys with Kamal has it in its bundle),
  # Kamal's own code reads them: its dotenv, its `kamal secrets` adapters, its errors, identical by
  # construction. Elsewhere kamal_rs reads them with Kamal's rules (SecretsReader).
  module Secrets
    module_function

    # { name => value }, in Kamal's order. Raises a KamalRs::SecretsError naming Kamal's class.
    def read(secrets_path:, destination:)
      reader = SecretsReader.new(secrets_path: secrets_path, destination: destination)
      return {} if reader.files.empty?

      if (kamal = loadable_kamal)
        kamal.new(destination: destination, secrets_path: secrets_path).to_h
      else
        reader.to_h
      end
    rescue KamalRs::Error
      raise
    rescue StandardError, ScriptError => e
      raise SecretsError.from(e)
    end

    # Kamal::Secrets of a Kamal 2 this Ruby can load (KAMAL_RS_SECRETS=kamal_rs reads with kamal_rs's
    # own reader even so), else nil.
    def loadable_kamal
      return nil if ENV["KAMAL_RS_SECRETS"] == "kamal_rs"

      unless defined?(::Kamal::Secrets)
        return nil unless Gem::Specification.find_all_by_name("kamal", ">= 2").any?

        require "kamal"
      end
      defined?(::Kamal::Secrets) && ::Kamal::Secrets.method_defined?(:to_h) ? ::Kamal::Secrets : nil
    rescue LoadError, Gem::LoadError
      nil
    end
  end

  # A failure while reading the secrets, under the class Kamal would name (JSON::ParserError,
  # RuntimeError "Could not find secret X", NoMethodError...), with the message Kamal prints.
  class SecretsError < Error
    attr_reader :kamal_name

    def self.from(exception)
      message = exception.message
      # Ruby 3.1's error_highlight and did_you_mean append lines to a NameError's message.
      message = message.lines.first.to_s.chomp if exception.is_a?(NameError)
      new(exception.class.name, message).tap { |e| e.set_backtrace(exception.backtrace || []) }
    end

    def initialize(kamal_name, message)
      @kamal_name = kamal_name
      super(message)
    end
  end

  # kamal_rs's own reader, for apps whose Ruby cannot load Kamal 2. Kamal's rules: each file parsed
  # on its own by dotenv 3.2's grammar (the native parser), later files winning; `$(...)` run as
  # Kamal's Kamal::Secrets::Dotenv::InlineCommandSubstitution runs it, by Ruby's backticks, except
  # `kamal secrets ...`, which Kamal answers itself (SecretsCommand).
  class SecretsReader
    def initialize(secrets_path:, destination:)
      @filenames = [ "#{secrets_path}-common", "#{secrets_path}#{".#{destination}" if destination}" ]
    end

    # The files that exist, in Kamal's order.
    def files
      @filenames.select { |f| File.exist?(f) }
    end

    def to_h
      files.each_with_object({}) do |file, secrets|
        secrets.merge!(read_file(file))
      end
    end

    private
      # A command that is not found (Ruby's backticks raise Errno::ENOENT) makes the whole file read
      # as empty: dotenv's `parse` ignores ENOENT, meant for a missing file (dotenv 3.2 lib/dotenv.rb).
      def read_file(file)
        Native.parse_dotenv(File.read(file)) { |command| substitute(command) }.to_h
      rescue Errno::ENOENT, Errno::EISDIR
        {}
      rescue KamalRs::RuntimeError => e
        # dotenv's own syntax error (`export KEY` with no value and no earlier KEY).
        raise unless e.message.end_with?("has an unset variable")

        raise SecretsError.new("Dotenv::FormatError", e.message)
      end

      def substitute(command)
        if command.match?(/\A\s*kamal\s*secrets\s+/)
          SecretsCommand.new(command.shellsplit.drop(1)).inline.chomp
        else
          `#{command}`.chomp
        end
      end
  end
end

require "kamal_rs/secrets_command"
