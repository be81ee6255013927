// How the cluster's processes end: on SIGINT or SIGTERM (delivered on a Dispatch queue, never in a signal
// handler), and when the `accm cluster up` that started them is gone (so that no child outlives its
// supervisor, even one that was SIGKILLed).

import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

enum ProcessLifetime {
    /// Calls `stop` once, on SIGINT, on SIGTERM, or when the process `parent` (if given) is no longer this
    /// process's parent. Keep the returned sources alive (`withExtendedLifetime`) while waiting.
    static func onTermination(parent: Int32?, _ stop: @escaping @Sendable () -> Void) -> [any DispatchSourceProtocol] {
        let once = OnceFlag()
        var sources: [any DispatchSourceProtocol] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { if once.claim() { stop() } }
            source.resume()
            sources.append(source)
        }
        if let parent {
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
            timer.setEventHandler { if getppid() != parent, once.claim() { stop() } }
            timer.resume()
            sources.append(timer)
        }
        return sources
    }
}

/// True for the first caller only.
final class OnceFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var claimed = false

    func claim() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if claimed { return false }
        claimed = true
        return true
    }
}

/// Flushes buffered standard output (lines a supervisor or a test reads as they come).
func flushStandardOutput() {
    fflush(nil)
}

/// Standard error, one line.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
