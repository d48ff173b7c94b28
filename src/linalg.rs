//! Tiny fixed-size linear algebra for lattices (rows = lattice vectors) and
//! Cartesian vectors, in f64. Kept dependency-free because every call site
//! works on 3-vectors and 3x3 matrices.

pub type Vec3 = [f64; 3];
pub type Mat3 = [[f64; 3]; 3];

pub fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub fn det(m: &Mat3) -> f64 {
    dot(m[0], cross(m[1], m[2]))
}

pub fn transpose(m: &Mat3) -> Mat3 {
    let mut t = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            t[j][i] = *v;
        }
    }
    t
}

pub fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// Row vector times matrix: `v . M`. With `M` a lattice (rows = vectors)
/// this turns fractional coordinates or integer offsets into Cartesian.
pub fn vec_mat(v: Vec3, m: &Mat3) -> Vec3 {
    [
        v[0] * m[0][0] + v[1] * m[1][0] + v[2] * m[2][0],
        v[0] * m[0][1] + v[1] * m[1][1] + v[2] * m[2][1],
        v[0] * m[0][2] + v[1] * m[1][2] + v[2] * m[2][2],
    ]
}

/// Inverse by the adjugate; `None` when the determinant is exactly zero or
/// not finite (callers validate near-singular cells before they get here).
pub fn inverse(m: &Mat3) -> Option<Mat3> {
    let d = det(m);
    if d == 0.0 || !d.is_finite() {
        return None;
    }
    // Columns of the inverse are the cross products of rows / det.
    let c0 = cross(m[1], m[2]);
    let c1 = cross(m[2], m[0]);
    let c2 = cross(m[0], m[1]);
    let mut inv = [[0.0; 3]; 3];
    for i in 0..3 {
        inv[i][0] = c0[i] / d;
        inv[i][1] = c1[i] / d;
        inv[i][2] = c2[i] / d;
    }
    Some(inv)
}

/// Frobenius norm of a matrix.
pub fn frobenius(m: &Mat3) -> f64 {
    m.iter().flatten().map(|v| v * v).sum::<f64>().sqrt()
}

/// Solves a symmetric positive definite system `a x = b` (`a` row-major
/// `n x n`) by Cholesky factorisation.
pub fn solve_symmetric(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        let d = d.max(1e-300).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // L y = b, then L^T x = y.
    for i in 0..n {
        for k in 0..i {
            b[i] -= a[i * n + k] * b[k];
        }
        b[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            b[i] -= a[k * n + i] * b[k];
        }
        b[i] /= a[i * n + i];
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_identity() {
        let m = [[3.0, 0.2, -0.1], [1.1, 4.0, 0.3], [-0.7, 0.5, 5.0]];
        let p = matmul(&m, &inverse(&m).unwrap());
        for (i, row) in p.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((v - expected).abs() < 1e-14);
            }
        }
        assert!(inverse(&[[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).is_none());
    }

    #[test]
    fn row_vector_convention() {
        // Fractional (1, 0, 0) is the first lattice vector (row 0).
        let m = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0]];
        assert_eq!(vec_mat([1.0, 0.0, 0.0], &m), m[0]);
        assert_eq!(vec_mat([0.0, 0.0, 1.0], &m), m[2]);
        assert_eq!(det(&m), -3.0);
    }
}
