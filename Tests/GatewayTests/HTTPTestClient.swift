// HTTP/1.1 over a loopback socket, as a client sees it: a request, then the raw response (status, headers,
// body) read until the server closes (`Connection: close`); requests one after another on one kept-alive
// connection, as pooling clients send them. Also a request whose client goes away early.

import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct HTTPResponse {
    var status: Int
    var headers: [String: String]
    var body: String

    /// The `data:` payloads of a server-sent event stream, in order.
    var events: [String] {
        body.components(separatedBy: "\n\n").compactMap { block in
            block.split(separator: "\n").first { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
        }
    }

    /// The body as a JSON object.
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
}

enum HTTPTestClient {
    /// A connected socket to 127.0.0.1:`port`.
    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw NSError(domain: "HTTPTestClient", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "connect to \(port) failed"])
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func send(_ fd: Int32, method: String, path: String, headers: [String: String], body: [UInt8],
                     keepAlive: Bool = false) {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(keepAlive ? "" : "Connection: close\r\n")"
            + "Content-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + body
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    static func request(port: Int, _ method: String, _ path: String, headers: [String: String] = [:],
                        body: [UInt8] = []) throws -> HTTPResponse {
        let fd = try connect(port: port)
        defer { close(fd) }
        send(fd, method: method, path: path, headers: headers, body: body)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            received += buffer[..<n]
        }
        return try parse(received)
    }

    static func get(port: Int, _ path: String, headers: [String: String] = [:]) throws -> HTTPResponse {
        try request(port: port, "GET", path, headers: headers)
    }

    static func post(port: Int, _ path: String, json: Any, headers: [String: String] = [:]) throws -> HTTPResponse {
        let body = try JSONSerialization.data(withJSONObject: json)
        return try request(port: port, "POST", path, headers: headers.merging(["Content-Type": "application/json"]) { $1 },
                           body: [UInt8](body))
    }

    /// One request on a kept-alive connection.
    struct Step {
        var method: String
        var path: String
        var body: [UInt8] = []

        static func get(_ path: String) -> Step { Step(method: "GET", path: path) }
        static func post(_ path: String, json: Any) throws -> Step {
            Step(method: "POST", path: path, body: [UInt8](try JSONSerialization.data(withJSONObject: json)))
        }
    }

    /// `steps` one after another on one connection, each sent once the previous response has been read whole (by
    /// its Content-Length, or to a chunked body's last chunk); then whether the server left the connection open
    /// (nothing read within `linger`). Throws when the server closes the connection instead of answering.
    static func keepAlive(port: Int, _ steps: [Step], linger: Duration = .milliseconds(300)) throws
        -> (responses: [HTTPResponse], leftOpen: Bool) {
        let fd = try connect(port: port)
        defer { close(fd) }
        var responses: [HTTPResponse] = []
        var pending: [UInt8] = []
        for (index, step) in steps.enumerated() {
            send(fd, method: step.method, path: step.path, headers: ["Content-Type": "application/json"], body: step.body,
                 keepAlive: true)
            guard let whole = try readOne(fd, &pending) else {
                throw NSError(domain: "HTTPTestClient", code: 0, userInfo: [NSLocalizedDescriptionKey:
                    "the server closed the connection without answering request \(index + 1) (\(step.method) \(step.path))"])
            }
            responses.append(try parse(whole))
        }
        let (seconds, attoseconds) = linger.components
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return (responses, n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    }

    /// The bytes of one whole response from `fd` (what came after it stays in `pending`); nil when the connection
    /// ends first.
    private static func readOne(_ fd: Int32, _ pending: inout [UInt8]) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        func more() -> Bool {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return false }
            pending += buffer[..<n]
            return true
        }
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        func find(_ needle: [UInt8], from start: Int) -> Int? {
            guard pending.count >= needle.count, start <= pending.count - needle.count else { return nil }
            return (start...(pending.count - needle.count)).first { pending[$0..<($0 + needle.count)].elementsEqual(needle) }
        }
        var headEnd = find(separator, from: 0)
        while headEnd == nil {
            guard more() else { return nil }
            headEnd = find(separator, from: 0)
        }
        let bodyStart = headEnd! + separator.count
        let head = String(decoding: pending[..<headEnd!], as: UTF8.self).lowercased()
        let length = head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
        var end: Int
        if let length {
            end = bodyStart + length
            while pending.count < end { guard more() else { return nil } }
        } else {  // chunked: up to the last (empty) chunk
            let last: [UInt8] = Array("0\r\n\r\n".utf8)
            var found = find(last, from: bodyStart)
            while found == nil {
                guard more() else { return nil }
                found = find(last, from: bodyStart)
            }
            end = found! + last.count
        }
        defer { pending.removeFirst(end) }
        return Array(pending[..<end])
    }

    private static func parse(_ bytes: [UInt8]) throws -> HTTPResponse {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else {
            throw NSError(domain: "HTTPTestClient", code: 0, userInfo: [NSLocalizedDescriptionKey: "no response head in \(text.prefix(200))"])
        }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ")[1]) ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = String(text[split.upperBound...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ text: String) -> String {
        var bytes = Array(text.utf8)[...]
        var out: [UInt8] = []
        while let lineEnd = bytes.firstIndex(of: 0x0D), let size = Int(String(decoding: bytes[..<lineEnd], as: UTF8.self), radix: 16) {
            let start = lineEnd + 2
            guard size > 0, start + size <= bytes.endIndex else { break }
            out += bytes[start..<(start + size)]
            bytes = bytes[(start + size + 2)...]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
