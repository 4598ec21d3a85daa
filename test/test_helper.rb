require "minitest/autorun"
require "stringio"
require "tmpdir"
require "fileutils"
require "kamal_rs"
require "kamal_rs/cli"

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
