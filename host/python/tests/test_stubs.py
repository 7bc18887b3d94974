"""The stubs in python-plugins/covet-stubs describe the real package: the
same public names, and for every function and method the same parameter
names, so an editor never suggests a call the host would refuse."""

import ast
import inspect
import unittest

from support import ROOT, covet

STUB = ROOT / "python-plugins" / "covet-stubs" / "covet" / "__init__.pyi"


def stub_tree():
    return ast.parse(STUB.read_text(encoding="utf-8"))


def stub_classes():
    return {node.name: node for node in stub_tree().body if isinstance(node, ast.ClassDef)}


def stub_params(fn: ast.AST) -> list:
    args = fn.args
    return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg != "self"]


class Stubs(unittest.TestCase):
    def test_stubs_and_package_export_the_same_names(self):
        declared = next(n for n in stub_tree().body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
        self.assertEqual(sorted(ast.literal_eval(declared.value)), sorted(covet.__all__))
        self.assertEqual(set(stub_classes()) & set(covet.__all__), set(covet.__all__))
        self.assertTrue((STUB.parent / "py.typed").exists())

    def test_every_stubbed_method_has_the_real_parameter_names(self):
        for name, node in stub_classes().items():
            real_class = getattr(covet, name)
            for fn in (n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
                real = getattr(real_class, fn.name)
                if isinstance(real, property):
                    continue
                real_params = [p for p in inspect.signature(real).parameters if p != "self"]
                if fn.name in ("get",) and name == "Headers":
                    real_params = ["name", "default"]  # one overload per arity
                    self.assertTrue(set(stub_params(fn)) <= set(real_params), f"{name}.{fn.name}")
                    continue
                self.assertEqual(stub_params(fn), real_params, f"{name}.{fn.name}")


if __name__ == "__main__":
    unittest.main()
