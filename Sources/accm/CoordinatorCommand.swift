// `accm coordinator`: routes requests between the stage workers; holds no weights.

import ArgumentParser
import Cluster
import Dispatch
import Foundation
import Transport

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Run the coordinator: workers connect to --workers, clients to --clients (ZeroMQ over TCP).")

    @Option(help: "Endpoint the workers connect to (a port of * picks a free one).")
    var workers = "tcp://127.0.0.1:5555"

    @Option(help: "Endpoint the clients connect to.")
    var clients = "tcp://127.0.0.1:5556"

    @Option(help: "Requests waiting for one stage before new ones are refused as overloaded.")
    var maxQueued = 256

    @Option(help: "Requests held at once before new ones are refused as overloaded.")
    var maxInFlight = 1024

    @Option(help: "Deadline of a request that sets none, in milliseconds.")
    var defaultDeadlineMs = 120_000

    @Option(help: "Heartbeat interval (both ways), in milliseconds.")
    var heartbeatMs = 1000

    @Option(help: "Heartbeat intervals a worker may stay silent before its work goes to another replica.")
    var liveness = 4

    @OptionGroup var curve: CurveServerOptions

    @Option(help: .hidden)
    var parentPid: Int32?

    func validate() throws {
        for endpoint in [workers, clients] where !endpoint.hasPrefix("tcp://") && !endpoint.hasPrefix("ipc://") {
            throw ValidationError("endpoint \(endpoint) must be tcp://HOST:PORT (or ipc://PATH)")
        }
        if maxQueued < 1 { throw ValidationError("--max-queued must be at least 1") }
    }

    func run() throws {
        let context = ZeroMQContext()
        let security = try curve.load()
        let options = CoordinatorOptions(
            workersEndpoint: workers, clientsEndpoint: clients, heartbeatIntervalMilliseconds: heartbeatMs,
            livenessIntervals: liveness, maxQueuedPerStage: maxQueued, maxInFlight: maxInFlight,
            defaultDeadlineMilliseconds: defaultDeadlineMs, maxDeadlineMilliseconds: max(3_600_000, defaultDeadlineMs),
            security: security, insecure: curve.insecure)
        do {
            try options.validate()
        } catch {
            throw CommandError("the coordinator will not start: \(error)")
        }
        let coordinator = try Coordinator(context: context, options: options)
        print("coordinator: workers at \(coordinator.workersEndpoint), clients at \(coordinator.clientsEndpoint)"
            + (security.map { ", CURVE on (\($0.workers.count) worker key(s), \($0.clients.count) client key(s) allowed)" }
                ?? (curve.insecure ? ", plain TCP (--insecure)" : ", plain TCP on loopback")))
        flushStandardOutput()
        let done = DispatchSemaphore(value: 0)
        let lifetime = ProcessLifetime.onTermination(parent: parentPid) { done.signal() }
        withExtendedLifetime(lifetime) { done.wait() }
        coordinator.stop()
    }
}
