//! Burn 0.21 takes second derivatives by nesting autodiff backends: on
//! `Autodiff<Autodiff<Flex>>` the outer backward pass runs on the inner autodiff backend, so a
//! gradient is itself a tracked tensor. This is what the R1 penalty (`src/r1.rs`) relies on.
//! Checked against hand-computed values: d²/dx² of x³, and d/dw |d/dx leaky(conv(x, w))|².

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::leaky_relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

type Inner = Autodiff<Flex>;
type Outer = Autodiff<Inner>;

fn assert_close(got: Vec<f32>, want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn nested_autodiff_takes_the_second_derivative_of_a_cube() {
    let dev = Default::default();
    let inner = Tensor::<Inner, 1>::from_floats([1.0, 2.0, -3.0], &dev).require_grad();
    let x = Tensor::<Outer, 1>::from_inner(inner.clone()).require_grad();
    let y = (x.clone() * x.clone() * x.clone()).sum();
    let g = x.grad(&y.backward()).expect("first derivative");
    assert_close(g.clone().into_data().to_vec().unwrap(), &[3.0, 12.0, 27.0]);
    let h = inner.grad(&g.sum().backward()).expect("second derivative");
    assert_close(h.into_data().to_vec().unwrap(), &[6.0, 12.0, -18.0]);
}

#[test]
fn nested_autodiff_differentiates_an_input_gradient_through_conv_and_leaky_relu() {
    let dev = Default::default();
    let w_in = Tensor::<Inner, 4>::from_floats([[[[0.5, -1.0], [2.0, 0.25]]]], &dev).require_grad();
    let w = Tensor::<Outer, 4>::from_inner(w_in.clone()).require_grad();
    let xi = Tensor::<Inner, 4>::from_floats(
        [[[[1.0, 2.0, 3.0], [4.0, -5.0, 6.0], [7.0, 8.0, -9.0]]]],
        &dev,
    );
    let x = Tensor::<Outer, 4>::from_inner(xi).require_grad();
    let out = conv2d(
        x.clone(),
        w,
        None,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    );
    let out = leaky_relu(out, 0.2).sum();
    let gx = x.grad(&out.backward()).expect("grad x");
    assert_close(
        gx.clone().into_data().to_vec().unwrap(),
        &[0.5, -0.9, -0.2, 2.5, 0.15, -0.95, 2.0, 2.25, 0.25],
    );
    // d/dw |gx|^2, checked by central differences in numpy when this test was written.
    let gw = w_in.grad(&gx.square().sum().backward()).expect("grad w");
    assert_close(
        gw.into_data().to_vec().unwrap(),
        &[5.94, -3.48, 13.56, 4.92],
    );
}
