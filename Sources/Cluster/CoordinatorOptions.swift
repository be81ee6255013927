// How a coordinator is set up: endpoints, timers, bounds, deadlines and CURVE.

import ACCMMessages
import Transport
import Wire

/// CURVE on both of the coordinator's sockets: its key pair, and the public keys admitted on each.
public struct CoordinatorSecurity: Sendable {
    public var keys: CurveKeyPair
    public var workers: AllowList
    public var clients: AllowList

    public init(keys: CurveKeyPair, workers: AllowList, clients: AllowList) {
        self.keys = keys
        self.workers = workers
        self.clients = clients
    }
}

/// How a coordinator is set up.
public struct CoordinatorOptions: Sendable {
    /// Where workers connect (`tcp://host:port`; port `*` picks a free one).
    public var workersEndpoint: String
    /// Where clients connect.
    public var clientsEndpoint: String
    /// How often heartbeats go both ways; a worker silent for `livenessIntervals` of them is dropped and its
    /// work sent to another replica.
    public var heartbeatIntervalMilliseconds: Int
    public var livenessIntervals: Int
    /// Requests waiting for one stage; beyond it a SUBMIT is refused with `overloaded`.
    public var maxQueuedPerStage: Int
    /// Requests in the cluster at once.
    public var maxInFlight: Int
    /// The deadline of a request that sets none, and the most one may set.
    public var defaultDeadlineMilliseconds: Int
    public var maxDeadlineMilliseconds: Int
    /// Workers a request may lose in a row (each time its task is sent to another replica) before it fails:
    /// a request that crashes every worker it reaches does not take the whole stage down.
    public var maxAttempts: Int
    /// CURVE on both sockets; nil: plain TCP (refused on a non-loopback address unless `insecure`).
    public var security: CoordinatorSecurity?
    public var insecure: Bool
    public var wire: WireLimits
    public var requests: RequestLimits

    public init(workersEndpoint: String, clientsEndpoint: String, heartbeatIntervalMilliseconds: Int = 1000,
                livenessIntervals: Int = 4, maxQueuedPerStage: Int = 256, maxInFlight: Int = 1024,
                defaultDeadlineMilliseconds: Int = 120_000, maxDeadlineMilliseconds: Int = 3_600_000, maxAttempts: Int = 3,
                security: CoordinatorSecurity? = nil, insecure: Bool = false,
                wire: WireLimits = WireLimits(), requests: RequestLimits = .default) {
        self.workersEndpoint = workersEndpoint
        self.clientsEndpoint = clientsEndpoint
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.livenessIntervals = livenessIntervals
        self.maxQueuedPerStage = maxQueuedPerStage
        self.maxInFlight = maxInFlight
        self.defaultDeadlineMilliseconds = defaultDeadlineMilliseconds
        self.maxDeadlineMilliseconds = maxDeadlineMilliseconds
        self.maxAttempts = maxAttempts
        self.security = security
        self.insecure = insecure
        self.wire = wire
        self.requests = requests
    }

    /// Refuses a set-up that would serve plain TCP beyond this machine, or timers and bounds out of range.
    public func validate() throws(CoordinatorSetupError) {
        if security == nil && !insecure {
            for endpoint in [workersEndpoint, clientsEndpoint] where !Self.isLoopback(endpoint) {
                throw CoordinatorSetupError(
                    "\(endpoint) is not a loopback address: without CURVE anyone who reaches it could register a worker "
                        + "or submit requests. Give --curve-secret with --allow-workers and --allow-clients "
                        + "(keys from `accm keygen`), or --insecure to serve plain TCP anyway")
            }
        }
        guard heartbeatIntervalMilliseconds >= 50, livenessIntervals >= 2 else {
            throw CoordinatorSetupError("heartbeats need an interval of at least 50 ms and a liveness of at least 2 intervals")
        }
        guard maxQueuedPerStage >= 1, maxInFlight >= 1, maxAttempts >= 1 else {
            throw CoordinatorSetupError("queue bounds and attempts must be at least 1")
        }
        guard defaultDeadlineMilliseconds >= 1, maxDeadlineMilliseconds >= defaultDeadlineMilliseconds else {
            throw CoordinatorSetupError("the default deadline must be positive and at most the largest deadline")
        }
    }

    /// Whether an endpoint is reachable from this machine only (loopback TCP, or an ipc:// path).
    public static func isLoopback(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        var host = String(endpoint.dropFirst(6))
        if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Why a coordinator will not start.
public struct CoordinatorSetupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
