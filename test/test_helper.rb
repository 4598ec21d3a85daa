# Under `bundle exec rake test` this process has the checkout's bundle; the commands the tests start
# (kamal-rs in an app directory, rake, Ruby Kamal) run as from a user's shell, without it.
ENV.replace(Bundler.unbundled_env) if defined?(Bundler) && ENV["BUNDLE_GEMFILE"]

require "minitest/autorun"
require "stringio"
require "tmpdir"
require "fileutils"
require "kamal_rs"
require "kamal_rs/cli"
require "shellwords"

ROOT = File.expand_path("..", __dir__)

# A skipped test did not run: a run with one is a failed run, which names it. (A test that cannot run
# here fails, saying what it needs; none calls `skip`.)
module Minitest
  class NoSkipsReporter < AbstractReporter
    def initialize(io)
      super()
      @io = io
      @skipped = []
    end

    def record(result)
      @skipped << "#{result.klass}##{result.name}: #{result.failure.message}" if result.skipped?
    end

    def report
      return if @skipped.empty?

      @io.puts "\n#{@skipped.size} skipped (a skipped test did not run, so this run fails):"
      @skipped.each { |s| @io.puts "  #{s}" }
    end

    def passed?
      @skipped.empty?
    end
  end

  def self.plugin_no_skips_init(options)
    reporter << NoSkipsReporter.new(options.fetch(:io, $stdout))
  end
  extensions << "no_skips"
end
FIXTURES = File.join(__dir__, "fixtures")

module CliHelpers
  # Runs `kamal-rs ARGS` in-process inside `dir`; returns [status, stdout, stderr].
  def kamal_rs(*args, dir:, env: {})
    out, err = StringIO.new, StringIO.new
    saved = env.keys.to_h { |k| [ k, ENV[k] ] }
    env.each { |k, v| ENV[k] = v }
    status = Dir.chdir(dir) { KamalRs::Cli.start(args, out: out, err: err) }
    [ status, out.string, err.string ]
  ensure
    saved&.each { |k, v| ENV[k] = v }
  end
end

# Ruby Kamal 2.12, run beside kamal_rs by the side-by-side tests.
module RubyKamal
  # Its command: KAMAL_RS_TEST_KAMAL, else the `kamal-2.12` that script/install-ruby-kamal puts on
  # PATH (script/setup runs it), else none.
  def self.command
    given = Shellwords.split(ENV["KAMAL_RS_TEST_KAMAL"].to_s)
    return given unless given.empty?

    found = ENV["PATH"].split(File::PATH_SEPARATOR).map { |d| File.join(d, "kamal-2.12") }.find { |f| File.executable?(f) }
    found ? [ found ] : []
  end
end
