import ArgumentParser
import CUDADriver

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension STA {
    /// Parses and runs the command line, then exits with the status of docs/CLI.md: 0 on success, 1
    /// when a check failed, 64 for a command-line mistake, 65–74 for data, file, GPU and I/O failures.
    /// Only command-line mistakes that ArgumentParser reports print the usage text; every other failure
    /// prints one `Error: …` line on standard error.
    static func main() {
        KernelCache.setCompileObserver { progress($0) }
        let command: ParsableCommand
        do {
            command = try parseAsRoot(normalized(Array(CommandLine.arguments.dropFirst())))
        } catch let error as UsageError {
            progress("Error: \(error)")
            terminate(ExitStatus.usage.rawValue)
        } catch {
            exit(withError: error)  // help, --version, or a parse error with the usage text (64)
        }
        do {
            var command = command
            try command.run()
        } catch {
            let status = ExitStatus.of(error)
            if error is ValidationError || error is CleanExit || (error as? ExitCode).map({ _ in true }) == true {
                exit(withError: error)
            }
            progress("Error: \(message(for: error))")
            terminate(status.rawValue)
        }
        terminate(0)
    }

    /// Parses and runs `arguments` (after `normalized`) and returns the message and status the tool
    /// would print and exit with; nil message on success. For tests.
    static func outcome(_ arguments: [String]) -> (message: String?, status: ExitStatus) {
        do {
            var command = try parseAsRoot(normalized(arguments))
            try command.run()
            return (nil, .success)
        } catch {
            let status = ExitStatus.of(error)
            if let code = error as? ExitCode, code == .success { return (nil, .success) }
            return (message(for: error), status)
        }
    }

    /// The command line with two repairs ArgumentParser does not make:
    /// - a negative number after an option that takes a value is its value (`--text -5` reads as
    ///   `--text=-5`, so the range check can say "must be at least 0" rather than "missing value");
    /// - `--json FILE` (the form before `--json` became a flag on every subcommand) becomes `--json`
    ///   is refused with a message that says where JSON goes now.
    static func normalized(_ arguments: [String]) throws(UsageError) -> [String] {
        var result = [String]()
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                result += arguments[index...]
                break
            }
            if argument.hasPrefix("--"), !argument.contains("="), index + 1 < arguments.count,
                isNegativeNumber(arguments[index + 1]), !flagNames.contains(argument)
            {
                result.append(argument + "=" + arguments[index + 1])
                index += 2
                continue
            }
            if argument == "--json", index + 1 < arguments.count, arguments[index + 1].lowercased().hasSuffix(".json") {
                throw UsageError(
                    "--json takes no file name: it prints the report as JSON on standard output; "
                        + "redirect it instead (e.g. --json > \(arguments[index + 1]))")
            }
            result.append(argument)
            index += 1
        }
        return result
    }

    /// Options that take no value, after which a negative number is not theirs.
    static let flagNames: Set<String> = ["--json", "--cpu", "--gpu", "--backward", "--quick", "--help"]

    static func isNegativeNumber(_ text: String) -> Bool {
        guard text.count >= 2, text.hasPrefix("-") else { return false }
        let body = text.dropFirst()
        guard let first = body.first, first.isNumber || first == "." else { return false }
        return Double(body) != nil || body.lowercased() == "inf"
    }
}
