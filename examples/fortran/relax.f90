! Relax a crystal with e3relax from Fortran.
!
!   relax_fortran MODEL_DIR INPUT [bohr]
!
! INPUT is POSCAR-like: a comment line, three lattice rows (lattice vector
! i on row i, read into lattice(:,i)), the number of atoms, then one
! "Z x y z" line per atom (Cartesian). With "bohr" the numbers are in Bohr
! (as QE or CP2K hold them) and so is the output: no conversion constants.
program relax
    use, intrinsic :: iso_c_binding, only: c_double
    use e3relax
    implicit none
    character(len=4096) :: model_dir, input, unit_arg, comment
    character(len=1024) :: message
    type(e3relax_model) :: model
    real(c_double) :: lattice(3, 3), new_lattice(3, 3)
    real(c_double), allocatable :: positions(:, :), new_positions(:, :)
    integer, allocatable :: numbers(:)
    integer :: natoms, i, ierr, u
    character(len=8) :: unit

    if (command_argument_count() < 2) then
        write (0, '(a)') 'usage: relax_fortran MODEL_DIR INPUT [bohr]'
        stop 2
    end if
    call get_command_argument(1, model_dir)
    call get_command_argument(2, input)
    unit = 'angstrom'
    if (command_argument_count() > 2) then
        call get_command_argument(3, unit_arg)
        if (trim(unit_arg) == 'bohr') unit = 'bohr'
    end if

    open (newunit=u, file=trim(input), status='old', action='read', iostat=ierr)
    if (ierr /= 0) then
        write (0, '(a)') 'cannot open '//trim(input)
        stop 1
    end if
    read (u, '(a)') comment
    do i = 1, 3
        read (u, *) lattice(:, i)
    end do
    read (u, *) natoms
    allocate (numbers(natoms), positions(3, natoms), new_positions(3, natoms))
    do i = 1, natoms
        read (u, *) numbers(i), positions(:, i)
    end do
    close (u)

    call e3relax_load(model, trim(model_dir), unit=trim(unit), ierr=ierr)
    if (ierr /= E3RELAX_SUCCESS) then
        call e3relax_last_error(message)
        write (0, '(a)') 'e3relax: '//trim(message)
        stop 1
    end if
    call e3relax_predict(model, natoms, numbers, positions, lattice, new_positions, new_lattice, ierr)
    if (ierr /= E3RELAX_SUCCESS) then
        call e3relax_last_error(message)
        write (0, '(a)') 'e3relax: '//trim(message)
        stop 1
    end if
    write (*, '(a)') 'relaxed by e3relax ('//trim(unit)//')'
    do i = 1, 3
        write (*, '(3es25.17)') new_lattice(:, i)
    end do
    write (*, '(i0)') natoms
    do i = 1, natoms
        write (*, '(i0,3es25.17)') numbers(i), new_positions(:, i)
    end do
    call e3relax_free(model)
end program relax
