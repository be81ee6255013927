// swift-tools-version: 6.1
// ACCM serving system: a CPU inference engine and pipeline for vision-language models
// that prune visual tokens and compensate with a question-guided caption.

import PackageDescription

let package = Package(
    name: "accm",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "accm", targets: ["accm"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Exact: Scripts/generate-protos.sh builds protoc-gen-swift of this version for the committed code.
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        // The HTTP gateway: Hummingbird 2 (on SwiftNIO), Prometheus metrics, structured logs.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System-library shims (nothing else lives here).
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]
        ),
        .systemLibrary(
            name: "CZeroMQ",
            providers: [.apt(["libzmq3-dev"]), .brew(["zeromq"])]
        ),
        // zlib for PNG (decoded in Swift, as Pillow does; libpng cannot report errors without longjmp).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CTurboJPEG",
            pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]
        ),

        // Engine.
        // The tensor value type alone (no BLAS): what messages and weightless processes use.
        .target(name: "TensorCore"),
        // C kernels over bf16/f16 and block-quantized weights: AVX2/FMA/F16C paths chosen at run time, a portable path.
        // -O3 in release: at SwiftPM's -O2, clang leaves the integer GEMM tiles' loops rolled and their sums in
        // memory (accm_gemm_q4_0 ran at 110 GFLOP/s on one core instead of 150).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"], .when(configuration: .release))]),
        .target(name: "Tensor", dependencies: ["TensorCore", "CBLAS", "CKernels"]),
        .target(name: "Weights", dependencies: ["Tensor", "CKernels"]),
        .target(name: "Models", dependencies: ["Tensor", "Weights"]),
        .target(name: "Tokenizers"),
        .target(name: "Images", dependencies: ["TensorCore", "CZlib", "CTurboJPEG"]),
        // What crosses between stages, processes and front doors: requests, results, options, errors, the
        // per-request state machine, the service protocols. No weights, no BLAS.
        .target(name: "ACCMMessages", dependencies: ["TensorCore", "Images"]),
        // The ZeroMQ binding: frames that own their bytes, a thread that owns a role's sockets.
        .target(name: "Transport", dependencies: ["CZeroMQ"]),
        // The wire: generated protobuf code from Protos/ and the framing of envelopes + raw tensor frames.
        .target(name: "Wire", dependencies: [
            "ACCMMessages", "Transport", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["Generated/PROTOS.sha256"]),
        // The coordinator and the client: no weights, no BLAS.
        .target(name: "Cluster", dependencies: ["ACCMMessages", "Wire", "Transport"]),
        // The worker runtime: the only cluster part that loads weights.
        .target(name: "ClusterWorker", dependencies: ["Cluster", "ACCM", "Wire", "Transport"]),
        // The HTTP front door: the OpenAI-compatible API, server-sent events, the playground page, metrics, logs.
        // It talks to an `ACCMService` (the cluster through its coordinator), so it links no weights and no BLAS.
        .target(name: "Gateway", dependencies: [
            "ACCMMessages",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "ACCM", dependencies: ["ACCMMessages", "Models", "Tensor", "Tokenizers", "Images", "Weights"]),
        // Accuracy-vs-FLOPs evaluation: dataset, scoring, tables, the PNG plot (written through zlib).
        .target(name: "Evaluation", dependencies: ["ACCM", "Images", "CZlib"]),

        // The command-line front.
        .executableTarget(
            name: "accm",
            dependencies: [
                "ACCM", "Evaluation", "Models", "Images", "Tokenizers", "CZeroMQ", "CBLAS", "Cluster", "ClusterWorker",
                "Transport", "Wire", "Gateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Runs the gateway on a loopback port over a fake service (HummingbirdTesting would add AsyncHTTPClient and
        // NIOSSL to every clean build; the tests speak HTTP/1.1 over a socket themselves).
        .testTarget(name: "GatewayTests", dependencies: [
            "Gateway", "ACCMMessages", .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels"]),
        .testTarget(name: "WeightsTests", dependencies: ["Weights"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Weights"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images"]),
        .testTarget(name: "ACCMTests", dependencies: ["ACCM", "Models", "Weights"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "ACCM", "Images"]),
        // Runs the built `accm` binary as a user would (exit status, messages, peak memory).
        .testTarget(name: "CommandLineTests", dependencies: [
            "accm", "CZlib", "CTurboJPEG", "ACCM", "Cluster", "Wire", "Transport", "Tensor",
        ]),
    ]
)
