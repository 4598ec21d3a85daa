require "minitest/autorun"
require "stringio"
require "tmpdir"
require "fileutils"
require "kamal_rs"
require "kamal_rs/cli"
require "shellwords"

ROOT = File.expand_path("..", __dir__)
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
