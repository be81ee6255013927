// Running a stage over a batch so that one bad request costs only itself: the batch runs once; if it
// throws, each request runs alone, and only the ones that still throw fail (with their own error).

/// `run`'s results for `requests`, one per request: the batch's when it succeeds, otherwise each request's
/// own result or `StageError`. (On the failure path each request runs again, so a stage must be free of side
/// effects that matter, as every stage here is; streamed text of a request that ran twice may repeat.)
public func isolating<Request, Output>(
    _ requests: [Request], _ run: ([Request]) throws -> [Output]
) -> [Result<Output, StageError>] {
    do {
        let outputs = try run(requests)
        guard outputs.count == requests.count else {
            let error = StageError(.internal, "a stage returned \(outputs.count) results for \(requests.count) requests")
            return requests.map { _ in .failure(error) }
        }
        return outputs.map { .success($0) }
    } catch {
        guard requests.count > 1 else { return [.failure(StageError(classifying: error))] }
        return requests.flatMap { request in isolating([request], run) }
    }
}
