module KamalRs
  # What a deploy or redeploy did: the version, the runtime, and each host's outcome per role.
  class Result
    # lock: :released, :held (releasing it failed) or :not_taken; primary_host: where it lives.
    # left_behind: the hosts the run went on without (`max_fail:`), [{host:, reason:}], and
    # finish_command: the command line that deploys exactly those, once they are back.
    attr_reader :version, :runtime, :hosts, :summary, :lock, :primary_host, :left_behind, :finish_command

    def initialize(report)
      @version = report[:version]
      @runtime = report[:runtime]
      @hosts = report[:hosts].map do |h|
        h.merge(roles: h[:roles].map { |r| r.merge(state: r[:state].to_sym) })
      end
      @summary = report[:summary]
      @lock = report[:lock].to_sym
      @primary_host = report[:primary_host]
      @left_behind = report[:left_behind] || []
      @finish_command = report[:finish_command]
      @error = report[:error]
    end

    def success?
      @error.nil?
    end

    # Every targeted host runs the new version: nothing was left behind.
    def complete?
      success? && @left_behind.empty?
    end
  end

  class Error
    # The Result of the run that failed, when it got as far as running.
    attr_accessor :result
  end

  # What the run did, for an exception that stopped it (Ctrl-C's Interrupt, a KamalRs::Error): a
  # KamalRs::Result, or nil when the run had not begun.
  def self.result_of(exception)
    return exception.result if exception.is_a?(KamalRs::Error)

    report = exception.instance_variable_get(:@kamal_rs_report)
    report && Result.new(report)
  end

  # Deploys to the config's servers as `kamal deploy` does (Kamal 2, or 1.9 for a 1.x config). Options are
  # the command line's, as keywords (KamalRs::Options::NAMES): config_file:, destination:, version:,
  # skip_push:, no_cache:, hosts:, roles:, primary:, skip_hooks:, verbose:, quiet:, lock_wait:,
  # lock_wait_timeout:, lock_wait_interval:, command_timeout:, max_fail: ("N" or "P%": hosts that may be
  # left behind). Returns a KamalRs::Result (not #complete? when hosts were left behind within
  # max_fail:); raises a KamalRs::Error (with #result) on failure. The GVL is released while it runs.
  def self.deploy(**options)
    run_command(:deploy, options)
  end

  # As `kamal redeploy`: no kamal-proxy boot, no prune.
  def self.redeploy(**options)
    run_command(:redeploy, options)
  end

  # As `kamal rollback VERSION`: under the lock, when every app host still has a container of `version`
  # for each of its roles, that version booted again (no pull, no kamal-proxy boot, no prune) and tagged
  # latest. Without a version, the newest one besides the running one that every host and role still
  # has. Raises KamalRs::RuntimeError, nothing changed, when the version is not there everywhere. Other
  # options as KamalRs.deploy's.
  def self.rollback(version = nil, **options)
    options = options.merge(version: version) if version
    run_command(:rollback, options)
  end

  # `kamal env push` for a Kamal 1.x config (its deploys upload no env files): each role's env file,
  # mode 400, on its hosts, and Traefik's. Options: config_file:, destination:, hosts:, roles:,
  # skip_hooks:, verbose:, quiet:, lock_wait:...
  def self.env_push(**options)
    run_command(:env_push, options)
  end

  def self.run_command(command, options)
    native_options = Options.native(command, options)
    config = Configuration.create_from(**options.slice(*Options::CONFIG_NAMES))
    # Before any host: where Kamal would stop on its secrets, this stops first.
    config.read_secrets
    $stdout.flush
    report = run_native { config.native.deploy(native_options) }
    result = Result.new(report)
    if (error = report[:error])
      exception = KamalRs.const_get(error[:class]).new(error[:message])
      exception.result = result
      raise exception
    end
    result
  end
  private_class_method :run_command

  # Runs the native deploy on a thread of its own and waits for it. Whatever ends the wait early
  # (Ctrl-C, Thread#raise, Timeout, which unwinds with `throw` rather than an exception) is passed on
  # to that thread as an Interrupt: it stops at a safe point, releases the lock and reports each host,
  # and only then does the caller continue. A second Ctrl-C does not cut that short: leaving mid-way
  # would abandon the lock.
  def self.run_native(&work)
    worker = Thread.new do
      Thread.current.report_on_exception = false
      work.call
    end
    finished = false
    begin
      result = worker.value
      finished = true
      result
    ensure
      unless finished
        propagating = $!
        worker.raise(Interrupt, "interrupted") if worker.alive?
        begin
          worker.join
        rescue Exception => e # rubocop:disable Lint/RescueException -- the worker's own Interrupt, or a 2nd Ctrl-C
          retry if worker.alive?
          # What the run did travels on with the exception that stopped it (KamalRs.result_of).
          report = e.instance_variable_get(:@kamal_rs_report)
          propagating.instance_variable_set(:@kamal_rs_report, report) if report && propagating && !propagating.frozen?
        end
      end
    end
  end
  private_class_method :run_native
end
