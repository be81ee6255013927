import Models
import Tensor
import XCTest

/// The LLaVA projector and ACCM's own modules (caption mapper, selector) against PyTorch.
final class ACCMModulesParityTests: XCTestCase {
    func testLlavaProjectorMatchesTransformers() throws {
        let fixture = try Fixture("llava")
        let projector = try LlavaProjector(directory: fixture.directory)
        assertClose(try projector(fixture.tensor("projector.input")), try fixture.tensor("projector.output"), "projector")
    }

    func testCaptionMapperMatchesPyTorchReference() throws {
        let fixture = try Fixture("mapper")
        let mapper = try CaptionMapper(directory: fixture.directory)
        assertClose(try mapper(fixture.tensor("input")), try fixture.tensor("output"), "mapper prefix")
    }

    func testCaptionMapperPrefixLengthDoesNotDependOnTokenCount() throws {
        let mapper = try CaptionMapper(directory: try Fixture("mapper").directory)
        for n in [0, 1, 30] {
            let prefix = try mapper(Tensor(shape: [1, n, 16], repeating: 0.5))
            XCTAssertEqual(prefix.shape, [1, 5, 32])
        }
    }

    func testCaptionSelectorMatchesPyTorchReference() throws {
        let fixture = try Fixture("selector")
        let selector = try CaptionSelector(directory: fixture.directory)
        assertClose(try selector(fixture.tensor("input")), try fixture.tensor("scores"), "selector scores")
    }

    func testCaptionSelectorScoresDoNotDependOnCandidateOrder() throws {
        let fixture = try Fixture("selector")
        let selector = try CaptionSelector(directory: fixture.directory)
        let candidates = try fixture.tensor("input").slice(0)
        let reversed = Tensor.concatenateRows((0..<3).reversed().map { candidates.rows($0..<($0 + 1)) })
        let forward = try selector(candidates.reshaped([1, 3, 32])).scalars
        let backward = try selector(reversed.reshaped([1, 3, 32])).scalars
        for i in 0..<3 { XCTAssertEqual(forward[i], backward[2 - i], accuracy: 1e-5) }
    }
}
