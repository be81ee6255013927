// HTTP/1.1 over a loopback socket, as a client sees it: a request, then the raw response (status, headers,
// body) read until the server closes (`Connection: close`). Also a request whose client goes away early.

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

    static func send(_ fd: Int32, method: String, path: String, headers: [String: String], body: [UInt8]) {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
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
