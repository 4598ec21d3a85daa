require_relative "lib/kamal_rs/version"

Gem::Specification.new do |spec|
  spec.name = "kamal_rs"
  spec.version = KamalRs::VERSION
  spec.authors = [ "kamal_rs contributors" ]
  spec.summary = "Kamal's deploy, redeploy and rollback, faster, from the same config/deploy.yml (Rust core)"
  spec.description = "Reads a Rails app's Kamal 2 (or 1.x) config exactly as Kamal does and leaves servers in " \
    "the state Kamal would, so Kamal can take over and back: each host rolls out on its own over one " \
    "multiplexed SSH connection, with Kamal's safety waits, a failure budget, revert and canaries, " \
    "per-host outcomes, and the other Kamal commands handed to Ruby Kamal."
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.0"

  # The Rust workspace ships with the gem: extconf.rb builds it with cargo at install time.
  spec.files = Dir.chdir(__dir__) do
    Dir["lib/**/*.rb", "lib/kamal_rs/events.schema.json", "exe/*", "ext/kamal_rs/*.rb", "ext/kamal_rs/Cargo.toml", "ext/kamal_rs/src/**/*.rs",
        "crates/*/Cargo.toml", "crates/*/src/**/*.rs", "Cargo.toml", "Cargo.lock", "README.md", "kamal_rs.gemspec"]
  end
  spec.bindir = "exe"
  spec.executables = [ "kamal-rs" ]
  spec.require_paths = [ "lib" ]
  spec.extensions = [ "ext/kamal_rs/extconf.rb" ]

  # The tests' (Debian: rake, ruby-minitest, ruby-json-schema; script/setup installs them).
  spec.add_development_dependency "json-schema"
  spec.add_development_dependency "minitest"
  spec.add_development_dependency "rake"
end
