import Foundation
import XCTest

/// Deploy/: the Kubernetes manifests valid against the API's schemas, and every `accm` command line of the
/// compose file, the manifests, the systemd units and the Containerfile naming subcommands and flags this
/// binary has, on the system's three ports (Deploy/check_deploy.py). Needs python3 with kubernetes-validate
/// and PyYAML: skipped, saying why, where they are missing, except under CI (CI set), where that fails.
final class DeployTests: XCTestCase {
    func testManifestsAreValidAndEveryAccmCommandLineUsesSubcommandsAndFlagsOfThisBinary() throws {
        let probe = try Accm.run(["python3", "-c", "import kubernetes_validate, yaml"], executable: "/usr/bin/env", timeout: 60)
        if probe.status != 0 {
            let why = "python3 with kubernetes-validate and PyYAML is needed (pip install kubernetes-validate pyyaml)"
            if ProcessInfo.processInfo.environment["CI"] != nil {
                XCTFail("\(why); CI is set, so this is a failure: \(probe.stderr)")
                return
            }
            throw XCTSkip("\(why): the deploy check is skipped")
        }
        let script = Accm.root.appendingPathComponent("Deploy/check_deploy.py").path
        let result = try Accm.run(["python3", script, "--accm", Accm.binary], executable: "/usr/bin/env", timeout: 300)
        print(result.stdout + result.stderr)
        XCTAssertFalse(result.timedOut, "check_deploy.py ran past 300 s")
        XCTAssertEqual(result.status, 0, "check_deploy.py found problems:\n\(result.stdout)\(result.stderr)")
    }
}
