require "json"
require "open3"
require "shellwords"
require "kamal_rs/hand_over"

module KamalRs
  # `$(kamal secrets ...)` in a secrets file, answered as Kamal 2.12 answers it in-process: it runs
  # `Kamal::Cli::Main.start(args + ["--inline"])` and takes the command's return value
  # (lib/kamal/secrets/dotenv/inline_command_substitution.rb, lib/kamal/cli/secrets.rb):
  # - `extract NAME JSON`: the value of NAME (or of a key ending in /NAME), else RuntimeError
  #   "Could not find secret NAME"; JSON that does not parse raises JSON::ParserError;
  # - `fetch --adapter A [--account X] [--from F] NAMES...`: the JSON of the adapter's results,
  #   shell-escaped (what `--inline` returns; without it Kamal prints the JSON plain). An adapter that
  #   needs an account and has none prints "No value provided..." and returns nil, and Kamal then
  #   stops on `nil.chomp`. The `test` adapter (no vault) is answered here; every other adapter by
  #   Ruby Kamal's executable, whose printed JSON is escaped here as `--inline` would return it.
  class SecretsCommand
    NO_ACCOUNT = "No value provided for required options '--account'".freeze
    FETCH_OPTIONS = { "--adapter" => :adapter, "-a" => :adapter, "--account" => :account, "--from" => :from }.freeze

    # args: the command's words without `kamal`, as Kamal splits them (`secrets fetch ...`).
    def initialize(args)
      @args = args
    end

    # The command's return value (a String, or nil where Kamal's is nil).
    def inline
      _secrets, command, *rest = @args
      parsed = parse(rest, command == "fetch" ? FETCH_OPTIONS : {})
      case command
      when "extract"
        return extract(*parsed[:arguments]) if parsed && parsed[:arguments].size == 2
      when "fetch"
        return fetch_test(parsed) if parsed && parsed[:adapter]&.downcase == "test"
        return fetch_by_kamal if parsed&.dig(:adapter)
      end
      by_kamal
    end

    private
      def extract(name, json)
        secrets = parse_json(json)
        value = secrets[name] || secrets.find { |key, _| key.end_with?("/#{name}") }&.last
        raise "Could not find secret #{name}" if value.nil?

        value
      end

      # JSON's error as Kamal's (json 2.7+) words it: older json gems put the parser's line first ("859: ").
      def parse_json(json)
        JSON.parse(json)
      rescue JSON::ParserError => e
        raise e.class, e.message.sub(/\A\d+: /, "")
      end

      # Kamal's test adapter (lib/kamal/secrets/adapters/test.rb): each name, prefixed with --from,
      # reversed, with LPAREN and RPAREN as parentheses.
      def fetch_test(options)
        return no_account if blank?(options[:account])

        results = options[:arguments].to_h do |name|
          key = [ options[:from], name ].compact.join("/")
          [ key, key.gsub("LPAREN", "(").gsub("RPAREN", ")").reverse ]
        end
        JSON.dump(results).shellescape
      end

      def fetch_by_kamal
        lines = by_kamal.lines
        json = lines.pop.to_s.chomp
        # What the adapter printed before the JSON, Kamal's process would have printed too.
        $stdout.print(lines.join)
        return no_account if json == NO_ACCOUNT

        json.shellescape
      end

      def no_account
        $stdout.puts NO_ACCOUNT
        nil
      end

      # Ruby Kamal's own `kamal secrets ...`, its stdout taken (stdin and stderr are the terminal's, for
      # a vault that asks for a password). Where it fails, Kamal in-process would have raised: the
      # class and message of its ERROR line.
      def by_kamal
        command = HandOver.kamal_command
        unless command
          raise SecretsError.new("KamalRs::KamalNotFound",
                                 "`kamal #{@args.join(" ")}` in a secrets file needs Ruby Kamal's secrets adapters, " \
                                 "and Kamal is not installed: add `gem \"kamal\"` to the Gemfile (or set KAMAL_RS_KAMAL)")
        end
        $stdout.flush
        output, status = Open3.capture2({ HandOver::GUARD => "1" }, *command, *@args, err: $stderr, in: $stdin)
        return output if status.success?

        raise failure(output, status)
      end

      def failure(output, status)
        if (line = output.lines.reverse.find { |l| l.include?("ERROR (") })
          plain = line.gsub(/\e\[[\d;]*m/, "").strip
          if (match = plain.match(/\AERROR \(([^)]+)\): (.*)\z/m))
            return SecretsError.new(match[1], match[2])
          end
        end
        SecretsError.new("RuntimeError", "`kamal #{@args.join(" ")}` exited with status #{status.exitstatus}")
      end

      # Thor's reading of `rest` for the given string options: { option => value, arguments: [...] },
      # or nil for anything Thor reads otherwise (an unknown option...), which Ruby Kamal then answers.
      def parse(rest, options)
        parsed = { arguments: [] }
        words = rest.dup
        while (word = words.shift)
          if word == "--"
            parsed[:arguments].concat(words)
            break
          elsif [ "--inline", "--no-inline" ].include?(word)
            next
          elsif word.start_with?("-")
            name, value = word.split("=", 2)
            key = options[name]
            return nil unless key

            value ||= words.shift
            return nil if value.nil?

            parsed[key] = value
          else
            parsed[:arguments] << word
          end
        end
        parsed
      end

      # ActiveSupport's `blank?` on a String.
      def blank?(value)
        value.nil? || value.match?(/\A[[:space:]]*\z/)
      end
  end
end
